"""Model lineage: a cross-detection matrix (every fingerprint on every generator) and the
similarity of fingerprints themselves (allowing for circular shifts)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import LoadedFingerprint, list_checkpoints, load_fingerprint_dir
from .data import compute_residuals, find_labelled, is_labelled_dir
from .denoiser import build_extractor
from .detect import Detector, detection_metrics
from .errors import DIFError
from .spectrum import circular_ncc

log = logging.getLogger(__name__)


def _subfolders(root: str | Path, keep: Callable[[Path], bool], what: str, holding: str) -> dict[str, Path]:
    root = Path(root)
    if not root.is_dir():
        raise DIFError(f"{what} not found: {root}")
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and keep(p)}
    if not found:
        raise DIFError(f"{root} has no {holding}")
    return found


def find_fingerprints(root: str | Path) -> dict[str, Path]:
    """{name: CHECK_DIR} for every sub-folder of ``root`` holding chk_<epoch>.pt files."""
    return _subfolders(root, lambda p: bool(list_checkpoints(p)), "fingerprint folder",
                       "sub-folders with chk_<epoch>.pt fingerprints")


def find_generators(root: str | Path) -> dict[str, Path]:
    """{name: folder} for every sub-folder of ``root`` with 0_real/ and 1_fake/."""
    return _subfolders(root, is_labelled_dir, "data root", "generator sub-folders with 0_real/ and 1_fake/")


@dataclass
class CrossResult:
    fingerprints: list[str]
    generators: list[str]
    accuracy: np.ndarray                 # fingerprints x generators
    auc: np.ndarray
    ap: np.ndarray
    extractors: dict[str, str]           # fingerprint -> extractor spec used
    rows: list[dict] = field(default_factory=list)  # one per (fingerprint, generator)

    def to_json(self) -> dict:
        def m(a: np.ndarray) -> list:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]
        return {"fingerprints": self.fingerprints, "generators": self.generators, "accuracy": m(self.accuracy),
                "auc": m(self.auc), "ap": m(self.ap), "extractors": self.extractors}


def cross_detection(fingerprints: dict[str, LoadedFingerprint], generators: dict[str, Path],
                    make_detector: Callable[[str, LoadedFingerprint], Detector],
                    extractor_for: Callable[[str, LoadedFingerprint], str],
                    device: str | torch.device = "cpu", transform=None, batch: int = 8,
                    progress: bool = False) -> CrossResult:
    """Score every fingerprint on every generator folder.

    Each fingerprint is scored with its own residual extractor (``extractor_for``); residuals
    are computed once per (extractor, crop, generator) and shared by the fingerprints that
    use them, never mixed across extractors.
    """
    names, gens = list(fingerprints), list(generators)
    acc = np.full((len(names), len(gens)), np.nan)
    auc, ap = acc.copy(), acc.copy()
    specs = {n: extractor_for(n, fp) for n, fp in fingerprints.items()}
    rows: list[dict] = []
    datasets = {g: find_labelled(p) for g, p in generators.items()}
    extractors: dict[str, torch.nn.Module] = {}
    cache: dict[tuple, object] = {}
    for i, n in enumerate(names):
        fp = fingerprints[n]
        det = make_detector(n, fp)
        spec = specs[n]
        if spec not in extractors:
            extractors[spec] = build_extractor(spec, device)
        ext = extractors[spec]
        for j, g in enumerate(gens):
            key = (ext.spec, det.crop, g)
            if key not in cache:
                ds = datasets[g]
                cache[key] = compute_residuals(ds.paths, ds.labels, ext, det.crop, batch_size=batch, device=device,
                                               transform=transform, progress=progress, desc=f"{g} ({ext.spec})",
                                               allow_smaller=transform is not None)
            res = cache[key]
            y = res.labels.numpy()
            if len(res) == 0 or len(set(y.tolist())) < 2:
                log.warning("%s: not enough usable images of both classes; left empty", g)
                continue
            m = detection_metrics(det.correlate(res.residuals), y, det)
            acc[i, j], auc[i, j], ap[i, j] = m["accuracy"], m["auc"], m["ap"]
            rows.append(dict(fingerprint=n, generator=g, extractor=ext.spec, **m))
    return CrossResult(names, gens, acc, auc, ap, {n: s for n, s in specs.items()}, rows)


def fingerprint_similarity(fps: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray]:
    """Peak |normalised cross-correlation| over all circular shifts between every pair of
    fingerprints (cropped to their common size). 1 on the diagonal."""
    names = list(fps)
    h = min(int(f.shape[-2]) for f in fps.values())
    w = min(int(f.shape[-1]) for f in fps.values())
    crop = {n: f[..., (f.shape[-2] - h) // 2:(f.shape[-2] - h) // 2 + h, (f.shape[-1] - w) // 2:(f.shape[-1] - w) // 2 + w]
            .reshape(1, -1, h, w).float() for n, f in fps.items()}
    sim = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            ncc = circular_ncc(crop[a], crop[names[j]])
            sim[i, j] = sim[j, i] = float(ncc.abs().max())
    return names, sim


def load_fingerprints(root: str | Path) -> dict[str, LoadedFingerprint]:
    """Every fingerprint folder under ``root``, at its latest checkpoint."""
    return {n: load_fingerprint_dir(p) for n, p in find_fingerprints(root).items()}
