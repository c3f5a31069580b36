"""Scoring images with a loaded fingerprint, and detection metrics.

Two scores: ``corr``, the paper's Pearson correlation of fingerprint and residual, and
``shift``, the normalised cross-correlation at the best circular shift within +-``max_shift``
pixels (computed with the FFT), which tolerates crops and shifts that misalign the residual
with the generator's periodic pattern.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, Union

import numpy as np
import torch

from .crop import center_crop
from .fingerprint import centres, nearest_centre, pearson
from .metrics import binary_metrics
from .spectrum import circular_ncc, shift_window

SCORES = ("corr", "shift")
Residuals = Union[torch.Tensor, Sequence[torch.Tensor]]


def crop_to(fp: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Central crop of a 1 x C x H x W fingerprint to ``size`` (scoring smaller residuals)."""
    if tuple(size) == tuple(fp.shape[-2:]):
        return fp
    return center_crop(fp, size)


@dataclass
class Detector:
    """A fingerprint with its real / fake centres (the nearest-centre classifier)."""

    fingerprint: torch.Tensor  # 1 x C x H x W
    mu_real: float
    mu_fake: float
    score: str = "corr"
    max_shift: int = 8
    orientation: float = 0.0  # +1 / -1: the fingerprint's fake direction (0: from the centres)

    @classmethod
    def from_state(cls, state, last: int = 20) -> "Detector":
        mu_r, mu_f = centres(state.train_real, state.train_fake, last)
        return cls(state.fingerprint, mu_r, mu_f, orientation=1.0 if mu_f >= mu_r else -1.0)

    def with_centres(self, mu_real: float, mu_fake: float, score: str | None = None) -> "Detector":
        return replace(self, mu_real=float(mu_real), mu_fake=float(mu_fake), score=score or self.score)

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

    @property
    def direction(self) -> float:
        """The fake direction of the fingerprint itself (fixed by its training centres)."""
        return self.orientation if self.orientation else self.sign

    def _score_block(self, residuals: torch.Tensor, score: str, sign: float) -> torch.Tensor:
        fp = crop_to(self.fingerprint, tuple(residuals.shape[-2:])).to(residuals.device, residuals.dtype)
        if score == "corr":  # in float64: the same score whatever the batch and the thread count (sharded runs)
            return pearson(fp.double(), residuals.double())
        if score == "shift":
            win = shift_window(circular_ncc(fp, residuals), self.max_shift).flatten(1)
            return sign * (sign * win).max(dim=1).values
        raise ValueError(f"unknown score {score!r}; use one of {SCORES}")

    def correlate(self, residuals: Residuals, batch: int = 64, score: str | None = None) -> np.ndarray:
        """Score of each residual (``self.score`` unless given). ``shift`` is the correlation at
        the shift where it leans furthest in the fingerprint's fake direction, so both scores
        share sign and scale. Residuals smaller than the fingerprint are scored against its
        central crop of their size."""
        score = score or self.score
        sign = self.direction
        blocks = [residuals] if isinstance(residuals, torch.Tensor) else [r.unsqueeze(0) if r.dim() == 3 else r for r in residuals]
        out = []
        for block in blocks:
            for i in range(0, len(block), batch):
                out.append(self._score_block(block[i:i + batch], score, sign).float())
        return torch.cat(out).cpu().numpy().astype(np.float64) if out else np.empty(0)

    def predict(self, corr: np.ndarray) -> np.ndarray:
        """0 real / 1 fake by the nearer centre."""
        return nearest_centre(corr, self.mu_real, self.mu_fake)

    def oriented(self, corr: np.ndarray) -> np.ndarray:
        """Score signed so that larger means more likely fake (for AP / AUC)."""
        return self.sign * np.asarray(corr, dtype=np.float64)

    @property
    def oriented_threshold(self) -> float:
        """The threshold in oriented units: ``oriented(c) > oriented_threshold`` is exactly the
        nearest-centre rule (no image is called fake when the centres coincide)."""
        if self.mu_fake == self.mu_real:
            return float("inf")
        return self.sign * self.threshold


def class_centres(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """Mean real and mean fake score (calibration from scored images)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if not ((y == 0).any() and (y == 1).any()):
        raise ValueError("calibration needs scores of both classes")
    return float(s[y == 0].mean()), float(s[y == 1].mean())


def detection_metrics(corr: Sequence[float], labels: Sequence[int], detector: Detector) -> dict:
    """Accuracy per class, balanced accuracy, AP and ROC AUC of the oriented score, with the
    centres and the threshold in correlation units."""
    m = binary_metrics(detector.oriented(corr), labels, detector.oriented_threshold)
    m.update(threshold=detector.threshold, mu_real=detector.mu_real, mu_fake=detector.mu_fake)
    return m
