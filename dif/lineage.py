"""Model lineage: finding the fingerprints and generators of a cross-detection matrix (computed
by ``dif.evaluate.cross_detection``) and the similarity of fingerprints themselves (allowing for
circular shifts)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import center_crop, is_labelled_dir
from .errors import DIFError, first_line, shown
from .methods import Method, is_check_dir, load_method
from .spectrum import circular_ncc

log = logging.getLogger(__name__)


def _subfolders(root: str | Path, keep: Callable[[Path], bool], what: str, holding: str) -> dict[str, Path]:
    root = Path(root)
    if not root.is_dir():
        raise DIFError(f"{what} not found: {shown(root)}")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise DIFError(f"cannot read {shown(root)} ({first_line(exc)})") from None
    found = {p.name: p for p in entries if p.is_dir() and keep(p)}
    if not found:
        raise DIFError(f"{shown(root)} has no {holding}")
    return found


def find_fingerprints(root: str | Path) -> dict[str, Path]:
    """{name: CHECK_DIR} for every sub-folder of ``root`` holding a trained method (DIF
    checkpoints, or a config.json naming a registered method)."""
    return _subfolders(root, is_check_dir, "fingerprint folder", "sub-folders with chk_<epoch>.pt fingerprints "
                       "(or other trained methods)")


def find_generators(root: str | Path) -> dict[str, Path]:
    """{name: folder} for every sub-folder of ``root`` with 0_real/ and 1_fake/."""
    return _subfolders(root, is_labelled_dir, "data root", "generator sub-folders with 0_real/ and 1_fake/")


def load_methods(root: str | Path, options=None, device: str | torch.device = "cpu") -> dict[str, Method]:
    """Every trained method under ``root`` (the latest checkpoint of each)."""
    return {n: load_method(p, options=options, device=device) for n, p in find_fingerprints(root).items()}


def fingerprint_similarity(fps: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray]:
    """Peak |normalised cross-correlation| over all circular shifts between every pair of
    fingerprints (cropped to their common size). 1 on the diagonal."""
    names = list(fps)
    h = min(int(f.shape[-2]) for f in fps.values())
    w = min(int(f.shape[-1]) for f in fps.values())
    crop = {n: center_crop(f, (h, w)).reshape(1, -1, h, w).float() for n, f in fps.items()}
    sim = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            ncc = circular_ncc(crop[a], crop[names[j]])
            sim[i, j] = sim[j, i] = float(ncc.abs().max())
    return names, sim
