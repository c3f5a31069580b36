"""Helpers the benchmarks share: the shared data beside the repository, small workloads, the
machine's matmul rate, named subsets, DIF fingerprints trained through the registry, held-out
metrics."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DIFError

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Optional[Path]:
    """``$DIF_SHARED_DATA``, else ``../shared/data`` beside the repository; None when absent."""
    p = Path(os.environ.get("DIF_SHARED_DATA", REPO.parent / "shared" / "data"))
    return p if p.is_dir() else None


def need_shared_data() -> Path:
    p = shared_data()
    if p is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA)")
    return p


def workload_dir(tmp: Path, n_per_class: int, sources: Sequence[str] = ("crn",), size: int = 356) -> Path:
    """``n_per_class`` real + fake images in tmp/workload: the CNNDetection ``sources`` of the shared
    data in turn, then synthetic PNGs of ``size`` px when they run out or are absent."""
    import shutil

    from PIL import Image

    src = shared_data()
    out = tmp / "workload"
    for sub in ("0_real", "1_fake"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        for g in sources:
            if src is not None and (src / "cnndetection" / g / sub).is_dir():
                files += sorted((src / "cnndetection" / g / sub).iterdir())
        for i in range(n_per_class):
            if i < len(files):
                shutil.copy(files[i], out / sub / f"{i}{files[i].suffix}")
            else:
                rng = np.random.default_rng(i + (1000 if sub == "1_fake" else 0))
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(out / sub / f"{i}.png")
    return out


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Measured fp32 matmul rate of this machine (GFLOP/s), best of ``reps``."""
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
    if not spec.strip():
        return dict(available)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in available]
    if unknown or not wanted:
        raise DIFError(f"{flag} {spec}: no such {what}: {', '.join(unknown) or '(none named)'} "
                       f"(known: {', '.join(available) or 'none'})")
    return {k: v for k, v in available.items() if k in wanted}


def parse_list(text: str, flag: str, kind=int, low: Optional[float] = None) -> list:
    """Comma-separated values of ``kind`` (DIFError in one line, naming ``flag``)."""
    try:
        values = [kind(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise DIFError(f"{flag} {text!r}: give values separated by commas") from None
    if not values or (low is not None and min(values) < low):
        raise DIFError(f"{flag} {text!r}: give at least one value" + (f", each >= {low:g}" if low is not None else ""))
    return values


def train_dif_folder(data: Path, out: Path, cfg, device: str = "cpu") -> float:
    """A DIF fingerprint of DATA (0_real/, 1_fake/) trained with ``cfg`` through the registry and
    saved in OUT as ``train_dif.py`` would; the seconds it took."""
    import torch

    from ..data import find_labelled
    from ..methods import get_method

    t = time.perf_counter()
    ds = find_labelled(data)
    method = get_method("dif").build(cfg)
    method.fit(ds.paths, ds.labels, device=torch.device(device))
    out.mkdir(parents=True, exist_ok=True)
    method.save(out)  # the final checkpoint alone, as the benchmarks need
    return time.perf_counter() - t


def held_out_metrics(methods: dict, paths: list, labels: list, conditions: list[str]) -> dict:
    """{name: {condition: {"accuracy", "auc"}}} of fitted ``methods`` on held-out images, each with
    its own threshold, clean ("clean") and after each named perturbation (both classes); one
    residual pass per condition serves every method that shares an extractor."""
    from ..evaluate import score_images
    from ..metrics import binary_metrics
    from ..robustness import get_perturbation

    out: dict = {name: {} for name in methods}
    for c in conditions:
        pert = None if c == "clean" else get_perturbation(c)
        sc = score_images(methods, list(paths), list(labels), pert, allow_smaller=pert is not None, batch_size=16,
                          workers=0)
        for name, m in methods.items():
            met = binary_metrics(sc.scores[name], sc.labels, m.threshold)
            out[name][c] = {"accuracy": round(float(met["accuracy"]), 4), "auc": round(float(met["auc"]), 4)}
    return out


def train_test_sets(folders: Sequence[Path]) -> dict:
    """{folder: (train LabelledSet, test LabelledSet)} of folders holding train/ and test/."""
    from ..data import find_labelled

    sets = {}
    for d in folders:
        if not (d / "train").is_dir() or not (d / "test").is_dir():
            raise DIFError(f"{d}: needs train/ and test/, each with 0_real/ and 1_fake/")
        sets[d] = (find_labelled(d / "train"), find_labelled(d / "test"))
    return sets
