"""Helpers shared by the benchmarks: locating ../shared/data and making a fallback data set."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    p = Path(os.environ.get("DIF_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return p if p.is_dir() else None


def workload_dir(tmp: Path, n_per_class: int, size: int = 356) -> Path:
    """``n_per_class`` real + fake images: CNNDetection CRN from ../shared/data when present,
    else synthetic PNGs of the same size."""
    import numpy as np
    from PIL import Image

    src = shared_data()
    out = tmp / "workload"
    for sub in ("0_real", "1_fake"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        files = sorted((src / "cnndetection" / "crn" / sub).iterdir())[:n_per_class] if src else []
        for i in range(n_per_class):
            dst = out / sub / f"{i}.png"
            if i < len(files):
                Image.open(files[i]).convert("RGB").save(dst)
            else:
                rng = np.random.default_rng(i + (1000 if sub == "1_fake" else 0))
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(dst)
    return out


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Measured fp32 matmul rate of this machine (GFLOP/s), best of ``reps``."""
    import time

    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def select(available: dict, spec: str, flag: str, what: str = "generators") -> dict:
    """The entries of ``available`` named in the comma-separated ``spec`` (all of them when it is
    empty); a name that is not there is a one-line error, never a silently empty run."""
    from dif.errors import DIFError

    if not spec.strip():
        return dict(available)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in available]
    if unknown or not wanted:
        raise DIFError(f"{flag} {spec}: no such {what}: {', '.join(unknown) or '(none named)'} "
                       f"(known: {', '.join(available) or 'none'})")
    return {k: v for k, v in available.items() if k in wanted}


def train_fingerprint_quietly(out, name: str, crop: int, epochs: int, batch: int, denoiser: str, augment: int,
                              seed: int, device: str) -> float:
    """``train_dif.py out/data/train/NAME out/fingerprints/NAME`` as a user would run it, its
    printout kept in out/fingerprints/NAME.log; the seconds it took (DIFError if it failed)."""
    import contextlib
    import sys
    import time

    from dif.errors import DIFError

    sys.path.insert(0, str(ROOT))
    import train_dif

    t = time.perf_counter()
    log_file = out / "fingerprints" / f"{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as fh, contextlib.redirect_stdout(fh):
        rc = train_dif.main([str(out / "data" / "train" / name), str(out / "fingerprints" / name), "--crop", str(crop),
                             "--epochs", str(epochs), "--batch", str(batch), "--denoiser", denoiser, "--augment",
                             str(augment), "--seed", str(seed), "--checkpoint-every", str(epochs), "--device", device,
                             "--quiet"])
    if rc:
        raise DIFError(f"train_dif.py failed for {name}")
    return time.perf_counter() - t


def held_out_metrics(methods: dict, paths: list, labels: list, conditions: list[str]) -> dict:
    """{name: {condition: {"accuracy", "auc"}}} of fitted ``methods`` on held-out images, each with
    its own threshold, clean ("clean") and after each named perturbation (both classes); one
    residual pass per condition serves every method that shares an extractor."""
    from dif.evaluate import score_images
    from dif.metrics import binary_metrics
    from dif.robustness import get_perturbation

    out: dict = {name: {} for name in methods}
    for c in conditions:
        pert = None if c == "clean" else get_perturbation(c)
        sc = score_images(methods, list(paths), list(labels), pert, allow_smaller=pert is not None, batch_size=16,
                          workers=0)
        for name, m in methods.items():
            met = binary_metrics(sc.scores[name], sc.labels, m.threshold)
            out[name][c] = {"accuracy": round(float(met["accuracy"]), 4), "auc": round(float(met["auc"]), 4)}
    return out
