"""Choosing the residual extractor per data set, out of fold (``train_dif.py --denoiser auto``).

No extractor wins everywhere: the DnCNN was chosen on JPEG-heavy data and is the weakest on a
lossless generator, where a plain wavelet residual is the best. ``auto`` lets the training images
decide: for each candidate the residuals are computed once (cached), fold fingerprints are trained
on all but one fold and score the held-out fold, and the candidate with the best out-of-fold ROC
AUC is kept; AUCs within ``TIE`` of the best count as ties, won by the cheaper extractor. Cost:
candidates x folds x the fingerprint's training, plus one residual pass per candidate; the candidates
left are not scored once the leader is within ``TIE`` of AUC 1 (none of them could win), a
candidate's cached residuals are dropped as soon as it falls out of the tie band, and those still in
it wait on disk while the next candidate's are computed (one cache in memory at a time).

``auto`` is ``train_dif.py``'s default: measured on two data sets under two recipes (docs/dif.md) it
was never more than 0.01 AUC below the best former default (``dncnn``) and up to 0.16 above it.
Its own fold count (``auto:K``, default 2, the setting those measurements used) is separate from
``--folds``, which sizes ``--calibrate cv``. ``auto:K:E`` trains the fold fingerprints for E epochs
(default 10, at most ``--epochs``; 0: the fingerprint's own ``--epochs``, what ``auto`` did before):
10-epoch folds cost about what one fixed DnCNN training costs (0.9-1.5x, against 1.3-4.7x), and on
six sets they chose as well or better (docs/dif.md, "The cost of auto").
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .config import DIFConfig
from .data import TrainingSet, training_residuals
from .errors import DIFError
from .extractors import DEFAULT_EXTRACTOR, build_extractor

log = logging.getLogger(__name__)
CANDIDATES = ("highpass", "wavelet-dwt", "wavelet", "dncnn")  # cheapest first
TIE = 0.005
AUTO_FOLDS = 2
AUTO_FOLD_EPOCHS = 10  # the fold trainings' epochs (0 = --epochs): about one fixed training's cost, docs/dif.md
TRAINING_DEFAULT = "auto"  # train_dif.py's --denoiser default; DEFAULT_EXTRACTOR stays the fixed fallback


def parse_auto(spec: Optional[str]) -> Optional[tuple[int, int]]:
    """(K folds, E fold epochs) of an ``auto[:K[:E]]`` spec (K >= 2, default ``AUTO_FOLDS``; E >= 0,
    default ``AUTO_FOLD_EPOCHS``; 0 = the fingerprint's own ``--epochs``); None for any other spec."""
    head, _, rest = (spec or "").strip().partition(":")
    if head.lower() != "auto":
        return None
    parts = rest.split(":") if rest else []
    if len(parts) > 2:
        raise DIFError(f"--denoiser {spec}: use auto, auto:K or auto:K:E")
    try:
        k = int(parts[0]) if parts else AUTO_FOLDS
    except ValueError:
        k = 0
    if not 2 <= k <= 100:
        raise DIFError(f"--denoiser {spec}: auto:K takes a fold count K from 2 to 100")
    try:
        e = int(parts[1]) if len(parts) > 1 else AUTO_FOLD_EPOCHS
    except ValueError:
        e = -1
    if not 0 <= e <= 100_000:
        raise DIFError(f"--denoiser {spec}: auto:K:E takes the fold trainings' epochs E from 0 (the fingerprint's "
                       f"own --epochs) to 100000")
    return k, e


def config_residuals(paths: Sequence[Path], labels: Sequence[int], extractor: torch.nn.Module, cfg: DIFConfig,
                     device, progress: bool = False) -> TrainingSet:
    """``data.training_residuals`` with everything a fingerprint's config says about them (crop,
    copies and their kinds, re-encoding, seed, tiles): one place, so a new option reaches every
    training the same way."""
    return training_residuals(paths, labels, extractor, (cfg.crop, cfg.crop), augment=cfg.augment,
                              reencode=cfg.reencode, seed=cfg.seed, device=device, progress=progress, tiles=cfg.tiles,
                              grid=cfg.tile_grid, kinds=cfg.augment_kinds)


def out_of_fold_auc(ts: TrainingSet, cfg: DIFConfig, folds: int, device, progress: bool = False) -> float:
    """ROC AUC of out-of-fold correlation scores (each fold's fingerprint, trained for
    ``cfg.epochs``, oriented by its own centres) over the clean training images."""
    from sklearn.metrics import roc_auc_score

    from .calibration import out_of_fold_scores

    cache = ts.cache
    scores = out_of_fold_scores(cache.residuals, cache.labels, replace(cfg, max_shift=0), folds, device, ts.groups,
                                progress, ts.per_image, ts.clean)["corr"]
    y, s = per_image_scores(scores[ts.clean], cache.labels.numpy()[ts.clean], ts.groups[ts.clean])
    return float(roc_auc_score(y, s))


def per_image_scores(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) per image: the mean score of each image's residuals (its tiles)."""
    ids, inv = np.unique(groups, return_inverse=True)
    s = np.bincount(inv, weights=scores) / np.bincount(inv)
    y = np.zeros(len(ids), dtype=labels.dtype)
    y[inv] = labels
    return y, s


def choose_extractor(paths: Sequence[Path], labels: Sequence[int], cfg: DIFConfig, device: torch.device,
                     candidates: Sequence[str] = CANDIDATES, folds: Optional[int] = None,
                     progress: bool = False, fold_epochs: Optional[int] = None) -> tuple[str, TrainingSet, dict]:
    """(the chosen extractor's spec, its cached training residuals, a report of every candidate).
    With fewer than ``folds`` usable images in a class nothing can be scored out of fold: the fixed
    default extractor is kept and the report says why (``fallback``). The fold fingerprints train
    for ``fold_epochs`` (default ``AUTO_FOLD_EPOCHS``; 0 or more than ``cfg.epochs``: ``cfg.epochs``)."""
    folds = folds or AUTO_FOLDS
    fold_epochs = AUTO_FOLD_EPOCHS if fold_epochs is None else fold_epochs
    fold_epochs = cfg.epochs if fold_epochs <= 0 else min(fold_epochs, cfg.epochs)
    report: dict = {"candidates": [], "folds": folds, "fold_epochs": fold_epochs, "tie": TIE,
                    "criterion": "out-of-fold ROC AUC (corr)"}
    kept: dict[str, TrainingSet] = {}
    with _Spill() as spill:  # early returns leave through it too: its folder is removed either way
        for spec in candidates:
            for name, other in kept.items():  # one cache in memory while this candidate's is computed
                spill.park(name, other)
            t0 = time.perf_counter()
            ext = build_extractor(spec, device)
            ts = config_residuals(paths, labels, ext, cfg, device, progress)
            y = ts.cache.labels.numpy()[np.unique(ts.groups, return_index=True)[1]]
            fewest = min((y == 0).sum(), (y == 1).sum())
            if fewest == 0:
                return ext.spec, ts, report  # an empty class: the caller's error says which
            if fewest < folds:
                fallback = build_extractor(DEFAULT_EXTRACTOR, device)
                report.update(chosen=fallback.spec, candidates=[],
                              fallback=f"fewer than {folds} usable images in a class: nothing to score out of fold, "
                                       f"kept {fallback.spec}")
                log.warning("--denoiser auto: %s", report["fallback"])
                if fallback.spec == ext.spec:
                    return fallback.spec, ts, report
                return fallback.spec, config_residuals(paths, labels, fallback, cfg, device, progress), report
            auc = out_of_fold_auc(ts, replace(cfg, extractor=ext.spec, epochs=fold_epochs), folds, device, progress)
            report["candidates"].append({"extractor": ext.spec, "auc": round(auc, 4),
                                         "seconds": round(time.perf_counter() - t0, 1)})
            kept[ext.spec] = ts
            log.info("--denoiser auto: %s out-of-fold AUC %.4f", ext.spec, auc)
            leader = _leader(report["candidates"])
            rest = list(candidates)[list(candidates).index(spec) + 1:]
            if rest and leader["auc"] >= 1.0 - TIE:  # no later (dearer) candidate can beat it by more than TIE
                report["skipped"] = rest
                report["skipped_because"] = f"{leader['extractor']} scored {leader['auc']:.4f} >= 1 - tie: no later " \
                                            f"candidate can win"
                log.info("--denoiser auto: %s", report["skipped_because"])
                break
            best = max(c["auc"] for c in report["candidates"])
            for c in report["candidates"]:  # out of the tie band now, out for good (the best only grows)
                if c["auc"] < best - TIE:
                    kept.pop(c["extractor"], None)
                    spill.drop(c["extractor"])
        chosen = _leader(report["candidates"])["extractor"]
        report["chosen"] = chosen
        spill.restore(chosen, kept[chosen])
    return chosen, kept[chosen], report


class _Spill:
    """Residual caches of candidates still in the tie band, parked on disk (``tempfile``'s folder)
    while the next candidate's residuals are computed, so that memory holds one cache at a time
    (each is 2.4 GB at 512 + 512 images with 2 copies); read back if their candidate wins. A cache
    that does not fit on that disk stays in memory."""

    def __enter__(self) -> "_Spill":
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="dif-auto-")
        self.files: dict[str, Path] = {}
        return self

    def __exit__(self, *exc) -> None:
        self._dir.cleanup()

    def park(self, spec: str, ts: TrainingSet) -> None:
        import shutil

        res = ts.cache.residuals
        if spec in self.files or not isinstance(res, torch.Tensor):
            return
        need = res.numel() * res.element_size()
        if shutil.disk_usage(self._dir.name).free < 1.2 * need + 2**30:
            log.info("--denoiser auto: no room in %s for a %.1f GB residual cache; it stays in memory", self._dir.name,
                     need / 1e9)
            return
        path = Path(self._dir.name) / f"{len(self.files)}-{spec.replace(':', '_')}.pt"
        torch.save(res, path)
        self.files[spec] = path
        ts.cache.residuals = None

    def restore(self, spec: str, ts: TrainingSet) -> None:
        path = self.files.pop(spec, None)
        if path is not None:
            ts.cache.residuals = torch.load(path, weights_only=True)
            path.unlink()

    def drop(self, spec: str) -> None:
        path = self.files.pop(spec, None)
        if path is not None:
            path.unlink()


def _leader(scored: list[dict]) -> dict:
    """The candidate the rule picks among those scored: the cheapest within ``TIE`` of the best AUC
    (``scored`` is in order of cost)."""
    best = max(c["auc"] for c in scored)
    return next(c for c in scored if c["auc"] >= best - TIE)
