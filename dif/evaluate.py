"""Evaluation pipelines any script composes, for any registered method: labelled evaluation,
unlabelled scoring, the robustness suite, cross-detection (the fold splitters live in ``sampling``).

Images are streamed (decoded in DataLoader workers, a batch at a time) and only per-image scores
are kept, so memory does not grow with the number of images.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Mapping, Optional, Sequence

import numpy as np
import torch

from .data import LabelledSet, Skipped, find_labelled, same_size_groups, stream_images
from .distributed import ScoreStore, World, merge_shards
from .errors import DIFError, shown
from .methods.base import Method
from .metrics import binary_metrics, predictions
from .robustness import compose, get_perturbation
from .sampling import holdout_split, stratified_folds  # noqa: F401  (re-exported for the scripts)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- folds

# ----------------------------------------------------------------------------- streaming scores

@dataclass
class Scored:
    """Per-image scores of one pass over some images (larger = more likely generated)."""

    paths: list[Path]
    labels: np.ndarray                  # 0 real, 1 fake, -1 unknown
    scores: dict[str, np.ndarray]       # method name -> scores, aligned with ``paths``
    skipped: Skipped = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def score_images(methods: Mapping[str, Method], paths: Sequence[Path], labels: Sequence[int],
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, allow_smaller: bool = False,
                 batch_size: int = 8, workers: Optional[int] = None, progress: bool = False,
                 desc: str = "Scoring", world: World = World(), store: Optional[ScoreStore] = None,
                 condition: str = "clean") -> Scored:
    """Score images with several methods in one streamed pass: each image is decoded once,
    prepared once per distinct ``prepare_key`` and turned into features once per distinct
    ``feature_key``. An image whose features or scores are not finite is skipped (a score is
    never NaN). Under torchrun each process scores its shard (``world``) and every process gets
    all scores back in the order of ``paths``. With a ``store``, scores found there (same
    ``condition``, method, file and file version) are reused and new ones appended per batch."""
    names = list(methods)
    prep_keys: dict[Hashable, int] = {}
    prepares = []
    groups: dict[tuple, list[str]] = {}
    for n in names:
        pk = methods[n].prepare_key(allow_smaller)
        if pk not in prep_keys:
            prep_keys[pk] = len(prepares)
            prepares.append(methods[n].prepare(allow_smaller))
        groups.setdefault((pk, methods[n].feature_key()), []).append(n)
    labels = list(labels)
    mine = world.shard(len(paths))
    done: dict[int, dict[str, float]] = {}     # image index -> scores (this rank's)
    skipped_idx: dict[int, str] = {}           # image index -> reason (this rank's)
    keys: dict[int, str] = {}
    tags = {n: f"{methods[n].name}@{methods[n].digest()}" for n in names} if store is not None else {}
    nonfinite_tag = "!" + "+".join(sorted(tags.values()))  # unusable for these methods (not finite)
    todo = mine
    if store is not None:  # a score is stored per (condition, file version) and method (its digest)
        todo = []
        for i in mine:
            keys[i] = ScoreStore.key(paths[i], condition)
            got = {n: store.get(keys[i], tags[n]) for n in names}
            bad = store.get(keys[i], "*") or store.get(keys[i], nonfinite_tag)
            if bad is not None:
                skipped_idx[i] = bad[1]
            elif all(g is not None for g in got.values()):
                done[i] = {n: float(got[n][0]) for n in names}
            else:
                todo.append(i)
        if len(mine) - len(todo):
            log.info("resumed %d of %d images from %s", len(mine) - len(todo), len(mine), shown(store.path))
    index_of = {Path(paths[i]): i for i in todo}
    skipped: Skipped = []
    for local, cols in stream_images([paths[i] for i in todo], prepares, transform, batch_size, workers, skipped,
                                     progress and world.is_main, desc):
        idx = [todo[j] for j in local]
        batch = {n: np.full(len(idx), np.nan) for n in names}
        for (pk, _), members in groups.items():
            for pos, block in same_size_groups(cols[prep_keys[pk]]):
                feats = methods[members[0]].features(block)
                for n in members:
                    batch[n][pos] = methods[n].score_features(feats)
        ok = np.logical_and.reduce([np.isfinite(batch[n]) for n in names])
        rows = []  # for the store: scores, and the images found unusable
        for j, i in enumerate(idx):
            if ok[j]:
                done[i] = {n: float(batch[n][j]) for n in names}
                rows += [(keys.get(i), tags.get(n), repr(done[i][n]), "") for n in names]
            else:
                skipped_idx[i] = f"{shown(paths[i])}: score is not finite (NaN or infinite residual)"
                log.warning("skipping %s", skipped_idx[i])
                rows.append((keys.get(i), nonfinite_tag, "skip", skipped_idx[i]))
        for p, msg in skipped:  # this batch's decoding failures
            i = index_of[Path(p)]
            skipped_idx[i] = msg
            rows.append((keys.get(i), "*", "skip", msg))
        skipped.clear()
        if store is not None:
            store.append(rows)
    local = (sorted(done), {n: [done[i][n] for i in sorted(done)] for n in names}, sorted(skipped_idx.items()))
    parts = world.gather(local)
    order, scores = merge_shards([(p[0], p[1]) for p in parts])
    all_skipped = sorted((i, m) for p in parts for i, m in p[2])
    return Scored([Path(paths[i]) for i in order], np.array([labels[i] for i in order], dtype=np.int64), scores,
                  [(Path(paths[i]), m) for i, m in all_skipped])


# ----------------------------------------------------------------------------- pipelines

@dataclass
class Evaluation:
    """One condition (clean or a perturbation) of a labelled evaluation."""

    scored: Scored
    metrics: dict


def _method_metrics(method: Method, scores: np.ndarray, labels: np.ndarray, skipped: int) -> dict:
    m = binary_metrics(scores, labels, method.threshold)
    m.update(method.metric_fields())
    m["skipped"] = skipped
    return m


def evaluate_labelled(method: Method, data: LabelledSet, perturbations: Sequence[str] = (), batch_size: int = 8,
                      workers: Optional[int] = None, progress: bool = False, name: str = "method",
                      world: World = World(), store: Optional[ScoreStore] = None) -> dict[str, Evaluation]:
    """Accuracy per class, AP and AUC of ``method`` on a labelled set, clean and under each
    perturbation (``run_robustness``); one streamed pass per condition."""
    base, base_name = method.input_transform()
    conditions = ["clean"] + [p for p in perturbations if p != "clean"]
    out: dict[str, Evaluation] = {}
    for cond in conditions:
        pert = None if cond == "clean" else get_perturbation(cond)
        scored = score_images({name: method}, data.paths, data.labels, compose(base, pert), allow_smaller=pert is not None,
                              batch_size=batch_size, workers=workers, progress=progress,
                              desc="Scoring" if cond == "clean" else cond, world=world, store=store,
                              condition=f"{base_name}>{cond}")
        if len(scored) == 0:
            raise DIFError(f"no usable images ({method.input_requirement()})")
        present = set(scored.labels.tolist())
        if present != {0, 1}:
            raise DIFError("no usable " + ("real" if 0 not in present else "fake") + " images left to evaluate")
        skipped = len(scored.skipped) + len(data.skipped)
        out[cond] = Evaluation(scored, _method_metrics(method, scored.scores[name], scored.labels, skipped))
    return out


def run_robustness(method: Method, data: LabelledSet, perturbations: Sequence[str], **kw) -> dict[str, Evaluation]:
    """The robustness suite: ``evaluate_labelled`` under each named perturbation (and clean)."""
    return evaluate_labelled(method, data, perturbations, **kw)


def score_unlabelled(method: Method, paths: Sequence[Path], batch_size: int = 8, workers: Optional[int] = None,
                     progress: bool = False, name: str = "method", world: World = World(),
                     store: Optional[ScoreStore] = None) -> tuple[Scored, np.ndarray]:
    """Scores and verdicts (1 generated) of unlabelled images."""
    base, base_name = method.input_transform()
    scored = score_images({name: method}, paths, [-1] * len(paths), base, batch_size=batch_size, workers=workers,
                          progress=progress, world=world, store=store, condition=f"{base_name}>clean")
    if len(scored) == 0:
        raise DIFError(f"no usable images ({method.input_requirement()})")
    return scored, predictions(scored.scores[name], method.threshold)


@dataclass
class CrossResult:
    """Every method (rows) on every generator (columns) under one condition."""

    fingerprints: list[str]
    generators: list[str]
    accuracy: np.ndarray
    auc: np.ndarray
    ap: np.ndarray
    extractors: dict[str, str]
    rows: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        def m(a: np.ndarray) -> list:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]
        return {"fingerprints": self.fingerprints, "generators": self.generators, "accuracy": m(self.accuracy),
                "auc": m(self.auc), "ap": m(self.ap), "extractors": self.extractors}


def cross_detection(methods: Mapping[str, Method], generators: Mapping[str, Path], conditions: Sequence[str] = ("clean",),
                    batch_size: int = 8, workers: Optional[int] = None, progress: bool = False,
                    world: World = World(), store: Optional[ScoreStore] = None) -> dict[str, CrossResult]:
    """Every method on every generator folder, per condition. Each generator's images are
    streamed once per condition through all methods together (features shared where methods
    share them); only per-image scores are kept."""
    names, gens = list(methods), list(generators)
    transforms = {methods[n].input_transform()[1] for n in names}
    if len(transforms) > 1:
        raise DIFError(f"the fingerprints were trained with different --reencode settings {sorted(transforms)}; "
                       "pass --reencode to choose one")
    base, base_name = methods[names[0]].input_transform()
    extractors = {n: str(methods[n].info().get("extractor", methods[n].name)) for n in names}
    results = {}
    datasets = {g: find_labelled(p) for g, p in generators.items()}
    for cond in conditions:
        pert = None if cond == "clean" else get_perturbation(cond)
        acc = np.full((len(names), len(gens)), np.nan)
        auc, ap = acc.copy(), acc.copy()
        rows: list[dict] = []
        for j, g in enumerate(gens):
            ds = datasets[g]
            scored = score_images(methods, ds.paths, ds.labels, compose(base, pert), allow_smaller=pert is not None,
                                  batch_size=batch_size, workers=workers, progress=progress, desc=f"{g} ({cond})",
                                  world=world, store=store, condition=f"{base_name}>{cond}")
            if set(scored.labels.tolist()) != {0, 1}:
                if world.is_main:
                    log.warning("%s: not enough usable images of both classes; left empty", g)
                continue
            for i, n in enumerate(names):
                m = _method_metrics(methods[n], scored.scores[n], scored.labels, len(scored.skipped) + len(ds.skipped))
                acc[i, j], auc[i, j], ap[i, j] = m["accuracy"], m["auc"], m["ap"]
                rows.append(dict(fingerprint=n, generator=g, extractor=extractors[n], **m))
        results[cond] = CrossResult(names, gens, acc, auc, ap, extractors, rows)
    return results
