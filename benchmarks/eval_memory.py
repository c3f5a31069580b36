#!/usr/bin/env python3
"""Peak memory of `eval_dif.py` against the number of images: streaming keeps it flat.

For each size N (default 100, 1000, 5000 images, half real, half fake; synthetic 320x320 JPEGs
made once in --workdir) it runs `eval_dif.py CHECK DATA --denoiser highpass --csv ...` in a fresh
process and reads the peak resident memory (ru_maxrss) of that process and of its largest
decoding worker. With --compare it also measures, in the same way, the pre-streaming pipeline that
kept every residual in memory (dif.data.compute_residuals then scoring), for reference.

    python benchmarks/eval_memory.py [--sizes 100,1000,5000] [--workdir DIR] [--compare]
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CROP = 256


def make_images(folder: Path, n: int, size: int = 320) -> None:
    """n synthetic JPEG photos-like images (smooth colour field + noise), made once."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    rng = np.random.default_rng(have)
    for i in range(have, n):
        coarse = rng.uniform(40, 215, size=(size // 16 + 1, size // 16 + 1, 3))
        img = np.kron(coarse, np.ones((16, 16, 1)))[:size, :size] + rng.normal(0, 4, (size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)


def subset(pool: Path, n: int, out: Path) -> Path:
    """DATA folder of n images (n/2 per class) made of symbolic links into the pool."""
    for k, sub in enumerate(("0_real", "1_fake")):
        d = out / sub
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n // 2):
            link = d / f"{i:06d}.jpg"
            if not link.exists():
                link.symlink_to(pool / f"{k * (n // 2) + i:06d}.jpg")
    return out


def make_checkpoint(folder: Path) -> Path:
    import torch

    from dif.checkpoint import save_checkpoint
    from dif.config import DIFConfig
    from dif.fingerprint import TrainState

    if not (folder / "chk_1.pt").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(0)
        state = TrainState(torch.randn(1, 3, CROP, CROP, generator=g), [0.0] * 20, [0.01] * 20, [1.0] * 20, 1)
        save_checkpoint(folder / "chk_1.pt", state, "highpass:1")
        DIFConfig(extractor="highpass:1", crop=CROP).save(folder)
    return folder


def _worker_peak_mb(stop, out: list) -> None:
    """Sample the peak resident memory (VmHWM) of this process's children (the DataLoader's
    decoding workers) until ``stop`` is set. (ru_maxrss of RUSAGE_CHILDREN cannot be used: a
    helper process that torch starts at import already reports 400+ MB there.)"""
    import glob

    peak = 0.0
    while not stop.wait(0.1):
        for f in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
            try:
                pids = open(f).read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    for line in open(f"/proc/{pid}/status"):
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) / 1024)
                except OSError:
                    pass
    out.append(peak)


def child(mode: str, check: str, data: str, csv: str) -> None:
    """Run one evaluation in this (fresh) process and print its peak memory as JSON."""
    import threading

    stop, worker_peak = threading.Event(), []
    sampler = threading.Thread(target=_worker_peak_mb, args=(stop, worker_peak), daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    if mode == "stream":
        import eval_dif  # noqa: E402  (the script itself, as a user runs it)

        from dif.cli import run_main

        rc = run_main(eval_dif.main, [check, data, "--csv", csv, "--quiet"])
        if rc:
            raise SystemExit(rc)
    else:  # the pre-streaming pipeline: every residual of the folder held at once
        from dif.checkpoint import load_fingerprint_dir
        from dif.data import compute_residuals, find_labelled
        from dif.detect import Detector
        from dif.extractors import build_extractor

        lf = load_fingerprint_dir(check)
        det = Detector.from_state(lf.state)
        ds = find_labelled(data)
        cache = compute_residuals(ds.paths, ds.labels, build_extractor("highpass"), det.crop, batch_size=8)
        det.correlate(cache.residuals)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_peak_rss_mb": worker_peak[0], "seconds": seconds}))


def measure(mode: str, check: Path, data: Path, csv: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, __file__, "--child", mode, str(check), str(data), str(csv)],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        from dif.errors import DIFError

        raise DIFError(f"the {mode} evaluation failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from dif.cli import Parser
    from dif.errors import DIFError

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--sizes", default="100,1000,5000", help="comma-separated numbers of images (even, >= 2)")
    p.add_argument("--workdir", type=Path, default=None, help="keep the generated images here (default: a temp folder)")
    p.add_argument("--compare", action="store_true", help="also measure the keep-every-residual pipeline")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise DIFError(f"--sizes must be comma-separated whole numbers, got {args.sizes!r}") from None
    if not sizes or any(n < 2 or n % 2 or n > 1_000_000 for n in sizes):
        raise DIFError(f"--sizes must be even numbers in [2, 1000000], got {args.sizes!r}")
    tmp = None
    work = args.workdir
    if work is None:
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
    try:
        make_images(work / "pool", max(sizes))
        check = make_checkpoint(work / "check")
        rows = []
        for n in sizes:
            data = subset(work / "pool", n, work / f"data_{n}")
            row = {"images": n, "stream": measure("stream", check, data, work / f"scores_{n}.csv")}
            if args.compare:
                row["keep_all"] = measure("keep_all", check, data, work / "unused.csv")
            rows.append(row)
            print(json.dumps(row))
        base = rows[0]["stream"]["peak_rss_mb"]
        print(f"\n| images | peak RSS (MB) | vs {sizes[0]} | worker peak (MB) | s |"
              + (" keep-all peak (MB) |" if args.compare else ""))
        print("|---|---|---|---|---|" + ("---|" if args.compare else ""))
        for r in rows:
            s = r["stream"]
            print(f"| {r['images']} | {s['peak_rss_mb']:.0f} | {100 * (s['peak_rss_mb'] / base - 1):+.1f}% | "
                  f"{s['worker_peak_rss_mb']:.0f} | {s['seconds']:.1f} |"
                  + (f" {r['keep_all']['peak_rss_mb']:.0f} |" if args.compare else ""))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        from dif.cli import run_main

        sys.exit(run_main(main))
