"""Memory and many processes (``benchmarks/memory.py``).

``run_streaming``: peak memory of ``eval_dif.py`` against the number of images, each size in a
fresh process (ru_maxrss, and the largest decoding worker's VmHWM); streaming keeps it flat.
``run_processes``: images per second of ``eval_dif.py`` on 1 and on N processes (torchrun, gloo),
each rank's peak memory, and whether every run's CSV is byte-identical to one process's. Both use
synthetic 320 x 320 JPEGs made once in a work folder and a 256 px fingerprint; the children run
this module (``python -m dif.experiments.memory --child ...``).
"""
from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import DIFError
from .common import REPO, parse_list

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

    from ..checkpoint import save_checkpoint
    from ..config import DIFConfig
    from ..fingerprint import TrainState

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

        from ..cli import run_main

        rc = run_main(eval_dif.main, [check, data, "--csv", csv, "--quiet"])
        if rc:
            raise SystemExit(rc)
    else:  # the pre-streaming pipeline: every residual of the folder held at once
        from ..checkpoint import load_fingerprint_dir
        from ..data import compute_residuals, find_labelled
        from ..detect import Detector
        from ..extractors import build_extractor

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
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "dif.experiments.memory", "--child", mode, str(check), str(data), str(csv)],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        raise DIFError(f"the {mode} evaluation failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def child_rank(argv: list[str]) -> None:
    """One rank: run eval_dif.py's main, then print this rank's peak memory."""
    import eval_dif

    from ..cli import run_main

    rc = run_main(eval_dif.main, argv)
    rank = int(os.environ.get("RANK", "0"))
    sys.stdout.write("RANKSTAT " + json.dumps({"rank": rank, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF)
                                                .ru_maxrss / 1024}) + "\n")
    sys.stdout.flush()
    raise SystemExit(rc)


def run_streaming(args) -> int:
    """Peak memory per size of ``args.sizes``; ``args.compare`` adds the keep-every-residual pipeline."""
    sizes = parse_list(args.sizes, "--sizes")
    if any(n < 2 or n % 2 or n > 1_000_000 for n in sizes):
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



def run_processes(args) -> int:
    """Images per second and memory per process count of ``args.procs``, per extractor."""
    procs = parse_list(args.procs, "--procs", low=1)

    n = args.images - args.images % 2
    make_images(args.workdir / "pool", n)
    data = subset(args.workdir / "pool", n, args.workdir / f"data_{n}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []
    for spec in args.extractors.split(","):
        check = make_checkpoint(args.workdir / "check")
        reference = None
        for nproc in procs:
            csv = args.workdir / f"scores_{spec}_{nproc}.csv"
            eval_args = [str(check), str(data), "--csv", str(csv), "--quiet", "--extractor", spec, "--allow-mixed-extractor"]
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
                if nproc > 1 else [sys.executable]
            t0 = time.perf_counter()
            proc = subprocess.run(launcher + ["-m", "dif.experiments.memory", "--child-rank", *eval_args], capture_output=True, text=True, env=env)
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
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-rank":
        child_rank(sys.argv[2:])
