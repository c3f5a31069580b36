"""Index arithmetic shared by the harness and the methods: stratified folds, hold-out splits and the
shuffled batches of an epoch. It sits below both, so that neither imports the other for it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .errors import DIFError


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[np.ndarray]:
    """Indices of ``k`` folds, each class spread evenly, shuffled reproducibly."""
    labels = np.asarray(labels)
    if k < 2:
        raise DIFError(f"folds must be >= 2 (got {k})")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        for j, i in enumerate(idx):
            folds[j % k].append(int(i))
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def holdout_split(labels: Sequence[int], train_per_class: int, seed: int) -> np.ndarray:
    """Test indices of one split that keeps ``train_per_class`` images of each class for
    training (drawn reproducibly); DIFError when a class would have no test image."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= train_per_class:
            raise DIFError(f"class {c} has {len(idx)} images: none left for testing after {train_per_class} for training")
        test.append(idx[train_per_class:])
    return np.sort(np.concatenate(test))


def make_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch of index batches; a last batch of one is folded into the one before
    (the contrastive loss needs pairs)."""
    perm = torch.randperm(n, generator=generator)
    batches = list(perm.split(batch_size))
    if len(batches) > 1 and batches[-1].numel() < 2:
        batches[-2] = torch.cat([batches[-2], batches[-1]])
        batches.pop()
    return batches
