#!/usr/bin/env python3
"""Images per second of `eval_dif.py` on 1 and on N processes (torchrun, gloo), and each rank's
peak memory.

Workload: synthetic 320x320 JPEGs (half real, half fake; made once in --workdir, shared with
benchmarks/eval_memory.py), a 256 px fingerprint, `--csv` of every score. For each extractor and
process count it runs `torchrun --standalone --nproc_per_node P eval_dif.py ...` (plain python for
P = 1), times the whole command, and reads every rank's peak resident memory. It checks that the
CSV of every run is byte-identical to the single-process one.

    python benchmarks/eval_distributed.py [--images 1000] [--procs 1,2] [--extractors highpass,wavelet-dwt]
"""
from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(argv: list[str]) -> None:
    """One rank: run eval_dif.py's main, then print this rank's peak memory."""
    import eval_dif

    from dif.cli import run_main

    rc = run_main(eval_dif.main, argv)
    rank = int(os.environ.get("RANK", "0"))
    sys.stdout.write("RANKSTAT " + json.dumps({"rank": rank, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF)
                                                .ru_maxrss / 1024}) + "\n")
    sys.stdout.flush()
    raise SystemExit(rc)


def main(argv=None) -> int:
    from dif.cli import Parser, int_in
    from dif.errors import DIFError

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--images", type=int_in(2, 1_000_000), default=1000)
    p.add_argument("--procs", default="1,2", help="comma-separated process counts")
    p.add_argument("--extractors", default="highpass,wavelet-dwt")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/dif_eval_bench"))
    args = p.parse_args(argv)
    try:
        procs = [int(x) for x in args.procs.split(",")]
    except ValueError:
        raise DIFError(f"--procs must be comma-separated whole numbers, got {args.procs!r}") from None
    if not procs or min(procs) < 1:
        raise DIFError("--procs must be >= 1")
    from eval_memory import make_checkpoint, make_images, subset

    n = args.images - args.images % 2
    make_images(args.workdir / "pool", n)
    data = subset(args.workdir / "pool", n, args.workdir / f"data_{n}")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []
    for spec in args.extractors.split(","):
        check = make_checkpoint(args.workdir / "check")
        reference = None
        for nproc in procs:
            csv = args.workdir / f"scores_{spec}_{nproc}.csv"
            eval_args = [str(check), str(data), "--csv", str(csv), "--quiet", "--denoiser", spec, "--allow-mixed-extractor"]
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
                if nproc > 1 else [sys.executable]
            t0 = time.perf_counter()
            proc = subprocess.run(launcher + [__file__, "--child", *eval_args], capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if proc.returncode:
                raise DIFError(f"{nproc} process(es) failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            stats = [json.loads(m) for m in re.findall(r"RANKSTAT (\{[^}]*\})", proc.stdout)]  # ranks' lines may interleave
            text = csv.read_text()
            reference = reference or text
            row = {"extractor": spec, "processes": nproc, "images": n, "seconds": round(wall, 1),
                   "images_per_s": round(n / wall, 1), "peak_rss_mb_per_rank": [round(s["peak_rss_mb"]) for s in
                                                                              sorted(stats, key=lambda s: s["rank"])],
                   "csv_identical_to_1_process": text == reference}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| extractor | processes | images/s | speed-up | peak RSS per rank (MB) | CSV = 1 process |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        base = next(x for x in rows if x["extractor"] == r["extractor"] and x["processes"] == procs[0])
        print(f"| {r['extractor']} | {r['processes']} | {r['images_per_s']} | "
              f"{r['images_per_s'] / base['images_per_s']:.2f}x | {', '.join(map(str, r['peak_rss_mb_per_rank']))} | "
              f"{'yes' if r['csv_identical_to_1_process'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        from dif.cli import run_main

        sys.exit(run_main(main))
