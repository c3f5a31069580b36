"""Centres that transfer to unseen images.

The paper's centres are the mean real / fake training-batch correlations of the last 20 steps:
in-sample values, which overfit when few images are used (unseen fakes correlate less than the
training fakes did). ``cv`` centres are means of *out-of-fold* scores instead: the training set
is split into folds, a fingerprint is trained on all folds but one with the same configuration
and scores the held-out fold, and the pooled held-out scores give the centres.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from .atomic import write_text_atomic
from .config import DIFConfig
from .detect import SCORES, Detector, class_centres
from .config import read_json
from .errors import DIFError, shown
from .sampling import stratified_folds
from .fingerprint import centres, epoch_steps, train_fingerprint

log = logging.getLogger(__name__)
CALIBRATION_NAME = "calibration.json"
METHODS = ("paper", "train", "augmented", "cv")


def score_all(detector: Detector, residuals, max_shift: int) -> dict[str, np.ndarray]:
    """Both scores of every residual."""
    d = replace(detector, max_shift=max_shift)
    return {s: d.correlate(residuals, score=s) for s in SCORES}


def in_sample_centres(detector: Detector, residuals, labels, max_shift: int) -> dict[str, list[float]]:
    """Centres from the final fingerprint's scores of its own training images."""
    return {s: list(class_centres(v, labels)) for s, v in score_all(detector, residuals, max_shift).items()}


def fold_detectors(residuals: torch.Tensor, labels: torch.Tensor, cfg: DIFConfig, folds: int,
                   device: str | torch.device = "cpu", groups: Optional[np.ndarray] = None,
                   progress: bool = False, per_image: float = 1.0) -> Iterator[tuple[np.ndarray, Detector]]:
    """For each of ``folds`` stratified folds of the images (``groups``: one image id per residual,
    so that an image's copies and tiles stay together): (the held-out images' ids, a detector
    trained with ``cfg`` on the other folds' residuals). ``per_image``: residuals per image (tiles;
    an epoch counts images)."""
    y = labels.numpy()
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    ids = np.unique(g)
    id_labels = np.array([y[g == i][0] for i in ids])
    if min((id_labels == 0).sum(), (id_labels == 1).sum()) < folds:
        raise DIFError(f"--folds {folds} needs at least {folds} images per class")
    for k, held_ids in enumerate(stratified_folds(id_labels, folds, cfg.seed + 17)):
        train_idx = torch.from_numpy(np.flatnonzero(~np.isin(g, ids[held_ids])))
        log.debug("fold %d/%d: training on %d residuals", k + 1, folds, len(train_idx))
        state = train_fingerprint(residuals[train_idx], labels[train_idx], replace(cfg, seed=cfg.seed + 1000 + k),
                                  device=device, progress=progress,
                                  steps_per_epoch=epoch_steps(len(train_idx), per_image, cfg.batch_size))
        yield ids[held_ids], Detector.from_state(state, cfg.centre_steps)


def out_of_fold_scores(residuals: torch.Tensor, labels: torch.Tensor, cfg: DIFConfig, folds: int,
                       device: str | torch.device = "cpu", groups: Optional[np.ndarray] = None,
                       progress: bool = False, per_image: float = 1.0) -> dict[str, np.ndarray]:
    """Score every training residual with a fingerprint that did not see it (``fold_detectors``).

    Returns {score name: scores} in the order of ``residuals``, each multiplied by its fold
    fingerprint's fake direction (so folds whose fakes correlate negatively pool correctly).
    """
    g = np.arange(len(labels)) if groups is None else np.asarray(groups)
    out = {s: np.full(len(labels), np.nan) for s in SCORES}
    for held_ids, det in fold_detectors(residuals, labels, cfg, folds, device, g, progress, per_image):
        test_idx = torch.from_numpy(np.flatnonzero(np.isin(g, held_ids)))
        for s, v in score_all(det, residuals[test_idx], cfg.max_shift).items():
            out[s][test_idx.numpy()] = det.direction * v
    return out


def save_calibration(folder: str | Path, cal: dict) -> Path:
    return write_text_atomic(Path(folder) / CALIBRATION_NAME, json.dumps(cal, indent=2) + "\n")


def load_calibration(folder: str | Path) -> dict:
    """calibration.json of a CHECK_DIR, or {} (the authors' folders have none), checked: each
    centre entry is two finite numbers, ``max_shift`` a whole number >= 0."""
    path = Path(folder) / CALIBRATION_NAME
    if not path.is_file():
        return {}
    cal = read_json(path)
    where = shown(path)
    if not isinstance(cal, dict):
        raise DIFError(f"{where}: expected a JSON object, got {type(cal).__name__}")
    for method in METHODS:
        entry = cal.get(method)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise DIFError(f"{where}: '{method}' must be an object")
        for score in SCORES:
            c = entry.get(score)
            if c is None:
                continue
            if not (isinstance(c, list) and len(c) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 and np.isfinite(v) for v in c)):
                raise DIFError(f"{where}: '{method}/{score}' must be two finite numbers, got {c!r}")
    ms = cal.get("max_shift", 0)
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= 4096:
        raise DIFError(f"{where}: 'max_shift' must be a whole number in [0, 4096], got {ms!r}")
    return cal


def choose_centres(detector: Detector, cal: dict, score: str, method: str) -> tuple[Detector, str]:
    """The detector with the centres of ``method`` (paper, train, cv or auto) for ``score``.

    auto: the paper's centres for ``corr``; for ``shift`` the cv centres when present, else the
    train ones (the paper's step correlations are not shift scores)."""
    if method == "auto":
        method = "paper" if score == "corr" else ("cv" if "cv" in cal else "train")
    if method == "paper":
        if score != "corr":
            raise DIFError("the paper's centres are plain correlations: use --centres train or cv with --score shift")
        return detector.with_centres(detector.mu_real, detector.mu_fake, score), method
    entry = cal.get(method, {}).get(score)
    if not entry:
        hint = ("train with --calibrate cv" if method == "cv" else "train with --augment N >= 1" if method == "augmented"
                else "train it with this version of train_dif.py")
        raise DIFError(f"this fingerprint has no '{method}' centres for --score {score} ({hint})")
    return detector.with_centres(entry[0], entry[1], score), method


def calibrate(state, cfg: DIFConfig, residuals: torch.Tensor, labels: torch.Tensor,
              groups: Optional[np.ndarray] = None, device: str | torch.device = "cpu",
              progress: bool = False, clean: Optional[np.ndarray] = None, per_image: float = 1.0) -> dict:
    """All centres of a trained fingerprint: ``paper`` (last training steps), ``train`` (the
    final fingerprint's scores of its training images) and, when ``cfg.calibrate == "cv"``,
    ``cv`` (out-of-fold scores). Only the un-augmented residuals (the first occurrence of each
    group, or those marked in ``clean``: every tile of an un-perturbed image) set the centres,
    except ``augmented``'s (with ``--augment``): the final fingerprint's scores of every training
    residual, perturbed copies included, so that the threshold has seen recompressed images."""
    y = labels.numpy()
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    if clean is None:  # the first residual of each group is its un-perturbed image
        clean_mask = np.zeros(len(y), dtype=bool)
        clean_mask[np.unique(g, return_index=True)[1]] = True
    else:
        clean_mask = np.asarray(clean, dtype=bool)
    clean = torch.from_numpy(np.flatnonzero(clean_mask))
    det = Detector.from_state(state, cfg.centre_steps)
    cal: dict = {"paper": {"corr": list(centres(state.train_real, state.train_fake, cfg.centre_steps))},
                 "train": in_sample_centres(det, residuals[clean], y[clean.numpy()], cfg.max_shift),
                 "max_shift": cfg.max_shift}
    if clean.numel() < len(y):  # perturbed copies: centres that have seen JPEG, resizing, blur
        cal["augmented"] = in_sample_centres(det, residuals, y, cfg.max_shift)
    if cfg.calibrate == "cv":
        oof = out_of_fold_scores(residuals, labels, cfg, cfg.folds, device, g, progress, per_image)
        # back from "fake direction" units to the raw scores of this fingerprint
        cal["cv"] = {s: [det.direction * c for c in class_centres(v[clean.numpy()], y[clean.numpy()])]
                     for s, v in oof.items()}
        cal["cv"]["folds"] = cfg.folds
    return cal
