#!/usr/bin/env python3
"""What ``--denoiser auto`` costs against one fixed extractor, and whether its cheaper fold trainings
choose as well: side by side on the same images, each training in its own process.

    python benchmarks/auto_cost.py DATA [DATA ...] --out OUT.json
        [--specs dncnn,auto:2:0,auto:2:10] [--perturb jpeg90] [--threads N]

DATA holds train/ and, optionally, test/, each with 0_real/ and 1_fake/ (without test/ only the
costs and choices are reported). For every DATA and every extractor
spec, ``train_dif.py``'s default fingerprint (crop 256, every tile, ``--augment 2``, 100 epochs) is
trained on DATA/train in a fresh process that reports its wall time and peak resident memory
(``ru_maxrss``), and scored on DATA/test, clean and after ``--perturb`` (both classes), with its
own centres. ``auto:2:0`` trains each fold fingerprint for the full 100 epochs (what ``auto``
meant before); ``auto:2:10`` trains them for 10 (the default from the first round of issue 27;
``auto:2:5``, for 5, is the default now: docs/dif.md). Printed:
seconds, peak MB, the choice and the held-out accuracy / AUC per spec, and each spec's time over
the first spec's (the fixed extractor).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_one(data: str, spec: str, out: str, epochs: int, crop: int) -> int:
    """Child process: train one fingerprint, print {"seconds", "max_rss_mb"} as the last line (a
    failure: train_dif.py's one-line error on stderr, its exit code)."""
    import resource

    sys.path.insert(0, str(ROOT))
    import train_dif

    from dif.cli import run_main

    t = time.perf_counter()
    rc = run_main(train_dif.main, [data, out, "--denoiser", spec, "--epochs", str(epochs), "--checkpoint-every", str(epochs),
                         "--crop", str(crop), "--quiet"])
    seconds = time.perf_counter() - t
    if rc:
        return rc
    print(json.dumps({"rc": rc, "seconds": round(seconds, 1),
                      "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
    return rc


def main(argv=None) -> int:
    import os
    import tempfile

    import numpy as np
    import torch

    from dif.atomic import check_output_file, write_text_atomic
    from dif.choose import parse_auto
    from dif.cli import Parser, int_in
    from dif.config import read_json
    from dif.data import find_labelled
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.methods import load_method
    from dif.robustness import parse_perturbations

    from _common import held_out_metrics

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="folders with train/ and test/")
    p.add_argument("--out", type=Path, required=True, help="JSON of every result")
    p.add_argument("--specs", default="dncnn,auto:2:0,auto:2:10", help="comma-separated --denoiser specs; the first is "
                                                                  "the fixed reference")
    p.add_argument("--epochs", type=int_in(1, 10**5), default=100)
    p.add_argument("--crop", type=int_in(32, 8192), default=256)
    p.add_argument("--perturb", default="jpeg90")
    p.add_argument("--threads", type=int_in(1, 256), default=None, help="torch threads of every training")
    args = p.parse_args(argv)
    check_output_file(args.out, "--out")
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    if not specs:
        raise DIFError("--specs: no extractor named")
    for spec in specs:  # a bad spec now, not after the first training
        if parse_auto(spec) is None:
            build_extractor(spec)
    conds = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    for d in args.data:
        if not (d / "train").is_dir():
            raise DIFError(f"{d}: needs train/ (and optionally test/), each with 0_real/ and 1_fake/")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    results: dict = {"specs": specs, "epochs": args.epochs, "crop": args.crop, "conditions": conds, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.data:
            row: dict = {}
            methods = {}
            for k, spec in enumerate(specs):
                folder = Path(tmp) / f"{d.name}_{k}"
                proc = subprocess.run([sys.executable, __file__, "--child", str(d / "train"), spec, str(folder),
                                       str(args.epochs), str(args.crop)], env=env, capture_output=True, text=True)
                if proc.returncode:
                    said = (proc.stderr.strip() or proc.stdout.strip() or "no message").splitlines()[-1]
                    said = said.removeprefix("error: ")
                    raise DIFError(f"training {spec} on {d} failed: {said}")
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                cfg = read_json(folder / "config.json")
                info["extractor"] = cfg["extractor"]
                if "extractor_choice" in cfg:
                    choice = cfg["extractor_choice"]
                    info["candidates"] = {c["extractor"]: c["auc"] for c in choice["candidates"]}
                    info["skipped"] = choice.get("skipped", [])
                row[spec] = info
                methods[spec] = load_method(folder)
            test = find_labelled(d / "test") if (d / "test").is_dir() else None
            if test:
                for spec, got in held_out_metrics(methods, test.paths, test.labels, conds).items():
                    row[spec].update(got)
            for spec in specs:
                row[spec]["time_over_fixed"] = round(row[spec]["seconds"] / row[specs[0]]["seconds"], 2)
                print(f"{d.name} {spec}: {row[spec]['seconds']:.0f} s ({row[spec]['time_over_fixed']:.2f}x), "
                      f"{row[spec]['max_rss_mb']:.0f} MB, {row[spec]['extractor']}; "
                      + "; ".join(f"{c} {row[spec][c]['accuracy']:.3f}/{row[spec][c]['auc']:.3f}" for c in conds
                                  if c in row[spec]), flush=True)
            results["sets"][str(d)] = row
            write_text_atomic(args.out, json.dumps(results, indent=1) + "\n")  # a snapshot after every set
    for spec in specs:
        rows = [r[spec] for r in results["sets"].values()]
        scored = [r for r in rows if "clean" in r]
        print(f"mean {spec}: time {np.mean([r['time_over_fixed'] for r in rows]):.2f}x the first"
              + "".join(f"; {c} {np.mean([r[c]['accuracy'] for r in scored]):.3f}/"
                        f"{np.mean([r[c]['auc'] for r in scored]):.3f}" for c in (conds if scored else [])))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(train_one(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6])))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
