"""Choosing the residual extractor per data set, out of fold (``train_dif.py --extractor auto``).

No extractor wins everywhere: the DnCNN was chosen on JPEG-heavy data and is the weakest on a
lossless generator, where a plain wavelet residual is the best. ``auto`` lets the training images
decide. Each candidate, cheapest first, computes its residuals of a few tiles per image (the
``SCREEN_TILES`` nearest the centre, with the perturbed training copies); fold fingerprints
trained for E epochs (``auto:K:E``, default 5; 0: ``--epochs``) on all but one of K folds (default
2) score the held-out fold, and the best out-of-fold AUC wins; AUCs within ``TIE`` of it are
ties, which go to the cheaper candidate. Dearer candidates are not scored once the leader is
within ``TIE`` of AUC 1. Only the chosen candidate's residuals are then computed over every tile
(on images of one or two tiles the screen already holds them all). Screening caches of candidates
still in the tie band wait on disk while the next candidate's are computed (one cache in memory
at a time). Benchmarks may also score the held-out fold after perturbations (``perturbations``).
What this costs and how well it chooses: docs/extractors.md.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from .config import DIFConfig
from .data import ResidualCache, TrainingSet, compute_residuals, training_residuals
from .errors import DIFError
from .extractors import DEFAULT_EXTRACTOR, build_extractor

log = logging.getLogger(__name__)
CANDIDATES = ("highpass", "wavelet-dwt", "wavelet", "dncnn")  # cheapest first
TIE = 0.005
AUTO_FOLDS = 2
AUTO_FOLD_EPOCHS = 5  # the fold trainings' epochs (0 = --epochs)
SCREEN_TILES = 2  # tiles per image each candidate is ranked on (those nearest the centre)
TRAINING_DEFAULT = "auto"  # train_dif.py's --extractor default; DEFAULT_EXTRACTOR stays the fixed fallback


class AutoSpec(NamedTuple):
    """What an ``auto`` spec asks for: the fold count and the fold trainings' epochs."""

    folds: int
    fold_epochs: int


def parse_auto(spec: Optional[str]) -> Optional[AutoSpec]:
    """The ``AutoSpec`` of ``auto[:K[:E]]`` (K >= 2 folds, default ``AUTO_FOLDS``; E >= 0 fold
    epochs, default ``AUTO_FOLD_EPOCHS``, 0 = the fingerprint's own ``--epochs``); None for any
    other spec."""
    head, _, rest = (spec or "").strip().partition(":")
    if head.lower() != "auto":
        return None
    parts = rest.split(":") if rest else []
    if len(parts) > 2:
        raise DIFError(f"--extractor {spec}: use auto, auto:K or auto:K:E")
    try:
        k = int(parts[0]) if parts else AUTO_FOLDS
    except ValueError:
        k = 0
    if not 2 <= k <= 100:
        raise DIFError(f"--extractor {spec}: auto:K takes a fold count K from 2 to 100")
    try:
        e = int(parts[1]) if len(parts) > 1 else AUTO_FOLD_EPOCHS
    except ValueError:
        e = -1
    if not 0 <= e <= 100_000:
        raise DIFError(f"--extractor {spec}: auto:K:E takes the fold trainings' epochs E from 0 (the fingerprint's "
                       f"own --epochs) to 100000")
    return AutoSpec(k, e)


def config_residuals(paths: Sequence[Path], labels: Sequence[int], extractor: torch.nn.Module, cfg: DIFConfig,
                     device, progress: bool = False) -> TrainingSet:
    """``data.training_residuals`` with everything a fingerprint's config says about them (crop,
    copies and their kinds, re-encoding, seed, tiles): one place, so a new option reaches every
    training the same way."""
    return training_residuals(paths, labels, extractor, (cfg.crop, cfg.crop), augment=cfg.augment,
                              reencode=cfg.reencode, seed=cfg.seed, device=device, progress=progress, tiles=cfg.tiles,
                              grid=cfg.tile_grid, kinds=cfg.augment_kinds)


def screen_tiles(cfg: DIFConfig) -> int:
    """Tiles per image a candidate is ranked on: ``SCREEN_TILES`` of those nearest the centre, or
    fewer when the fingerprint itself trains on fewer (``--tiles``)."""
    return SCREEN_TILES if cfg.tiles == 0 else min(cfg.tiles, SCREEN_TILES)


def held_out_residuals(paths: Sequence[Path], labels: Sequence[int], extractor: torch.nn.Module, cfg: DIFConfig,
                       tiles: int, device, perturbations: Sequence[str],
                       progress: bool = False) -> dict[str, ResidualCache]:
    """The training images' residuals after each perturbation (after ``--reencode``, as scoring
    sees them): what the out-of-fold fingerprints are also scored on. A perturbation that shrinks
    an image below the crop keeps it whole (its residual is scored against the fingerprint's centre)."""
    from .robustness import compose, get_perturbation, parse_reencode

    base = parse_reencode(cfg.reencode)
    out = {}
    for name in perturbations:
        out[name] = compute_residuals(paths, labels, extractor, (cfg.crop, cfg.crop), device=device,
                                      transform=compose(base, get_perturbation(name)), progress=progress,
                                      desc=f"Residuals ({name})", allow_smaller=True, tiles=tiles, grid=cfg.tile_grid)
    return out


def out_of_fold_aucs(ts: TrainingSet, perturbed: dict[str, ResidualCache], cfg: DIFConfig, folds: int,
                     device, progress: bool = False) -> dict[str, float]:
    """ROC AUC per condition ("clean" and each of ``perturbed``) of out-of-fold correlation scores:
    each fold fingerprint trains ``cfg.epochs`` epochs on the other folds' residuals (copies
    included; an epoch counts images, not tiles) and scores its held-out images clean and
    perturbed, oriented by its own centres; an image's score is the mean over its tiles."""
    from sklearn.metrics import roc_auc_score

    from .calibration import fold_detectors

    cache = ts.cache
    image_of = {p: g for p, g in zip(cache.paths, ts.groups)}
    # per condition: (residuals, labels, image ids, which rows are scored): the clean rows of the
    # training set, and every perturbed row of an image the training set kept
    conds = {"clean": (cache.residuals, cache.labels.numpy(), ts.groups, ts.clean)}
    for name, pc in perturbed.items():
        groups = np.array([image_of.get(p, -1) for p in pc.paths], dtype=np.int64)
        conds[name] = (pc.residuals, pc.labels.numpy(), groups, groups >= 0)
    oof = {name: np.full(len(c[1]), np.nan) for name, c in conds.items()}
    for held_ids, det in fold_detectors(cache.residuals, cache.labels, cfg, folds, device, ts.groups, progress,
                                        ts.per_image):
        for name, (res, _, groups, keep) in conds.items():
            idx = np.flatnonzero(np.isin(groups, held_ids) & keep)
            if len(idx):
                oof[name][idx] = det.direction * det.correlate(_rows(res, idx))
    aucs = {}
    for name, (_, labels, groups, keep) in conds.items():
        yy, ss = per_image_scores(oof[name][keep], labels[keep], groups[keep])
        aucs[name] = float(roc_auc_score(yy, ss)) if len(set(yy.tolist())) == 2 else float("nan")
    return aucs


def _rows(residuals, idx: np.ndarray):
    """The residuals at ``idx``: a tensor's rows, or of a list of same-size blocks (sizes differ
    after a resize) each row on its own."""
    if isinstance(residuals, torch.Tensor):
        return residuals[torch.from_numpy(idx)]
    flat = [r for block in residuals for r in block]
    return [flat[i] for i in idx]


def criterion(aucs: dict[str, float]) -> float:
    """What ``auto`` ranks by: the clean out-of-fold AUC, or with perturbed conditions the mean of
    it and their mean AUC (half the weight on images as trained, half on what images go through)."""
    pert = [v for k, v in aucs.items() if k != "clean" and np.isfinite(v)]
    return 0.5 * (aucs["clean"] + float(np.mean(pert))) if pert else aucs["clean"]


def fewest_images(ts: TrainingSet) -> int:
    """Usable images in the smaller class (an image's copies and tiles count once): what bounds
    how many folds can score it."""
    y = ts.cache.labels.numpy()[np.unique(ts.groups, return_index=True)[1]]
    return int(min((y == 0).sum(), (y == 1).sum()))


def per_image_scores(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) per image: the mean score of each image's residuals (its tiles)."""
    ids, inv = np.unique(groups, return_inverse=True)
    s = np.bincount(inv, weights=scores) / np.bincount(inv)
    y = np.zeros(len(ids), dtype=labels.dtype)
    y[inv] = labels
    return y, s


def choose_extractor(paths: Sequence[Path], labels: Sequence[int], cfg: DIFConfig, device: torch.device,
                     candidates: Sequence[str] = CANDIDATES, folds: Optional[int] = None,
                     progress: bool = False, fold_epochs: Optional[int] = None,
                     stop_early: bool = True, perturbations: Sequence[str] = ()) -> tuple[str, TrainingSet, dict]:
    """(the chosen extractor's spec, its training residuals, a report of every candidate).

    Each candidate computes its residuals of ``screen_tiles`` tiles per image (clean and the
    perturbed copies of ``cfg.augment``); fold fingerprints trained for ``fold_epochs`` (default
    ``AUTO_FOLD_EPOCHS``; 0 or more than ``cfg.epochs``: ``cfg.epochs``) score the held-out fold,
    and the best out-of-fold AUC wins, ties to the cheaper candidate. Only the chosen one's
    residuals are then computed over every tile. ``perturbations`` (names of
    ``robustness.get_perturbation``; none by default) also score the held-out fold after each, and
    the ``criterion`` weighs them half. With too few usable images in a class to score anything
    out of fold the fixed default extractor is kept and the report says why (``fallback``).
    ``stop_early`` False scores every candidate even once none of the dearer ones can win (the same
    choice; the worst case's cost, for benchmarks)."""
    folds = folds or AUTO_FOLDS
    fold_epochs = AUTO_FOLD_EPOCHS if fold_epochs is None else fold_epochs
    fold_epochs = cfg.epochs if fold_epochs <= 0 else min(fold_epochs, cfg.epochs)
    tiles = screen_tiles(cfg)
    screen_cfg = replace(cfg, tiles=tiles)
    report: dict = {"candidates": [], "tie": TIE, "folds": folds, "fold_epochs": fold_epochs, "screen_tiles": tiles,
                    "rule": "out-of-fold ROC AUC (corr); ties: cheaper"}
    if perturbations:
        report.update(perturbations=list(perturbations),
                      rule="mean of the clean and the mean perturbed out-of-fold ROC AUC (corr); ties: cheaper")
    kept: dict[str, TrainingSet] = {}
    with _Spill() as spill:  # early returns leave through it too: its folder is removed either way
        for spec in candidates:
            for name, other in kept.items():  # one cache in memory while this candidate's is computed
                spill.park(name, other)
            t0 = time.perf_counter()
            ext = build_extractor(spec, device, precision=cfg.extractor_precision)
            ts = config_residuals(paths, labels, ext, screen_cfg, device, progress)
            fewest = fewest_images(ts)
            if fewest == 0:
                return ext.spec, _full(ts, paths, labels, ext, cfg, device, progress), report  # the caller says which
            if fewest < folds:
                fallback = build_extractor(DEFAULT_EXTRACTOR, device, precision=cfg.extractor_precision)
                report.update(chosen=fallback.spec, candidates=[],
                              fallback=f"fewer than {folds} usable images in a class: nothing to score out of fold, "
                                       f"kept {fallback.spec}")
                log.warning("--extractor auto: %s", report["fallback"])
                if fallback.spec == ext.spec:
                    return fallback.spec, _full(ts, paths, labels, ext, cfg, device, progress), report
                return fallback.spec, config_residuals(paths, labels, fallback, cfg, device, progress), report
            perturbed = {}
            if perturbations:
                kept_paths = list(dict.fromkeys(ts.cache.paths[i] for i in np.flatnonzero(ts.clean)))
                label_of = dict(zip(ts.cache.paths, ts.cache.labels.tolist()))
                perturbed = held_out_residuals(kept_paths, [label_of[p] for p in kept_paths], ext, screen_cfg, tiles,
                                               device, perturbations, progress)
            t_res = time.perf_counter() - t0
            aucs = out_of_fold_aucs(ts, perturbed, replace(cfg, extractor=ext.spec, epochs=fold_epochs), folds, device,
                                    progress)
            del perturbed
            row: dict = {"extractor": ext.spec, "score": round(criterion(aucs), 4), "auc": round(aucs["clean"], 4)}
            if perturbations:
                row["perturbed"] = {k: round(v, 4) for k, v in aucs.items() if k != "clean"}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            row["residual_seconds"] = round(t_res, 1)  # the rest of ``seconds`` is the fold fingerprints'
            report["candidates"].append(row)
            kept[ext.spec] = ts
            log.info("--extractor auto: %s out-of-fold AUC %s", ext.spec,
                     ", ".join(f"{k} {v:.4f}" for k, v in aucs.items()))
            leader = _leader(report["candidates"])
            rest = list(candidates)[list(candidates).index(spec) + 1:]
            if stop_early and rest and leader["score"] >= 1.0 - TIE:  # no later (dearer) candidate can beat it by more than TIE
                report["skipped"] = rest
                report["skipped_because"] = f"{leader['extractor']} scored {leader['score']:.4f} >= 1 - tie: no later " \
                                            f"candidate can win"
                log.info("--extractor auto: %s", report["skipped_because"])
                break
            best = max(c["score"] for c in report["candidates"])
            for c in report["candidates"]:  # out of the tie band now, out for good (the best only grows)
                if c["score"] < best - TIE:
                    kept.pop(c["extractor"], None)
                    spill.drop(c["extractor"])
        chosen = _leader(report["candidates"])["extractor"]
        report["chosen"] = chosen
        spill.restore(chosen, kept[chosen])
        ts = kept.pop(chosen)
    t0 = time.perf_counter()
    full = _full(ts, paths, labels, build_extractor(chosen, device, precision=cfg.extractor_precision), cfg, device,
                 progress)
    report["final_residual_seconds"] = round(time.perf_counter() - t0, 1)
    return chosen, full, report


def _full(ts: TrainingSet, paths: Sequence[Path], labels: Sequence[int], ext: torch.nn.Module, cfg: DIFConfig,
          device, progress: bool) -> TrainingSet:
    """The training residuals over every tile the fingerprint trains on: ``ts`` itself when the
    screen already held them all (no image gave as many tiles as the screen's limit)."""
    tiles = screen_tiles(cfg)
    if tiles == cfg.tiles or _most_tiles(ts) < tiles:
        return ts
    return config_residuals(paths, labels, ext, cfg, device, progress)


def _most_tiles(ts: TrainingSet) -> int:
    """The most residuals one image or copy gave (its tiles): the longest run of one image id, as
    an image's tiles are consecutive in the cache."""
    g = ts.groups
    if len(g) == 0:
        return 0
    ends = np.r_[np.flatnonzero(np.diff(g) != 0), len(g) - 1]
    return int(np.diff(np.r_[-1, ends]).max())


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
            log.info("--extractor auto: no room in %s for a %.1f GB residual cache; it stays in memory", self._dir.name,
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
    """The candidate the rule picks among those scored: the cheapest of those within ``TIE`` of the
    best ``criterion`` (``scored`` is in order of cost)."""
    best = max(c["score"] for c in scored)
    return next(c for c in scored if c["score"] >= best - TIE)
