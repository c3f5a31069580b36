"""Scoring images with a loaded fingerprint, and detection metrics."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .fingerprint import centres, nearest_centre, pearson


@dataclass
class Detector:
    """A fingerprint with its real / fake centres (the nearest-centre classifier)."""

    fingerprint: torch.Tensor  # 1 x C x H x W
    mu_real: float
    mu_fake: float

    @classmethod
    def from_state(cls, state, last: int = 20) -> "Detector":
        mu_r, mu_f = centres(state.train_real, state.train_fake, last)
        return cls(state.fingerprint, mu_r, mu_f)

    @property
    def crop(self) -> tuple[int, int]:
        return int(self.fingerprint.shape[-2]), int(self.fingerprint.shape[-1])

    @property
    def threshold(self) -> float:
        """The decision boundary: halfway between the centres."""
        return 0.5 * (self.mu_real + self.mu_fake)

    @property
    def sign(self) -> float:
        """+1 when fakes correlate more than reals with the fingerprint, else -1."""
        return 1.0 if self.mu_fake >= self.mu_real else -1.0

    def correlate(self, residuals: torch.Tensor, batch: int = 256) -> np.ndarray:
        """Pearson correlation of the fingerprint with each residual."""
        fp = self.fingerprint.to(residuals.device, residuals.dtype)
        out = [pearson(fp, residuals[i:i + batch]) for i in range(0, len(residuals), batch)]
        return torch.cat(out).cpu().numpy().astype(np.float64) if out else np.empty(0)

    def predict(self, corr: np.ndarray) -> np.ndarray:
        """0 real / 1 fake by the nearer centre."""
        return nearest_centre(corr, self.mu_real, self.mu_fake)

    def oriented(self, corr: np.ndarray) -> np.ndarray:
        """Correlation signed so that larger means more likely fake (for AP / AUC)."""
        return self.sign * np.asarray(corr, dtype=np.float64)


def detection_metrics(corr: Sequence[float], labels: Sequence[int], detector: Detector) -> dict:
    """Accuracy per class, balanced accuracy, AP and ROC AUC of the oriented correlation."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    corr = np.asarray(corr, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    pred = detector.predict(corr)
    real, fake = labels == 0, labels == 1
    real_acc = float((pred[real] == 0).mean()) if real.any() else float("nan")
    fake_acc = float((pred[fake] == 1).mean()) if fake.any() else float("nan")
    both = real.any() and fake.any()
    score = detector.oriented(corr)
    return {
        "accuracy": float(np.nanmean([real_acc, fake_acc])),
        "real_accuracy": real_acc,
        "fake_accuracy": fake_acc,
        "ap": float(average_precision_score(labels, score)) if both else None,
        "auc": float(roc_auc_score(labels, score)) if both else None,
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
        "threshold": detector.threshold,
        "mu_real": detector.mu_real,
        "mu_fake": detector.mu_fake,
    }
