"""Detection metrics from ``(scores, labels, threshold)``: any method's scores, larger = more
likely generated; an image is called generated when its score is above the threshold."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def predictions(scores: Sequence[float], threshold: float) -> np.ndarray:
    """1 (generated) where the score is above the threshold, else 0."""
    return (np.asarray(scores, dtype=np.float64) > threshold).astype(np.int64)


def binary_metrics(scores: Sequence[float], labels: Sequence[int], threshold: float) -> dict:
    """Accuracy per class, their mean (balanced accuracy), AP and ROC AUC (None when a class is
    missing), the counts and the threshold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    pred = predictions(s, threshold)
    real, fake = y == 0, y == 1
    real_acc = float((pred[real] == 0).mean()) if real.any() else float("nan")
    fake_acc = float((pred[fake] == 1).mean()) if fake.any() else float("nan")
    both = bool(real.any() and fake.any())
    return {
        "accuracy": float(np.nanmean([real_acc, fake_acc])) if (real.any() or fake.any()) else float("nan"),
        "real_accuracy": real_acc,
        "fake_accuracy": fake_acc,
        "ap": float(average_precision_score(y[real | fake], s[real | fake])) if both else None,
        "auc": float(roc_auc_score(y[real | fake], s[real | fake])) if both else None,
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
        "threshold": float(threshold),
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a proportion: sensible at 0 / n and n / n, where
    the normal approximation collapses to a point."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, mid - half)), float(min(1.0, mid + half))
