"""Learning-rate schedules shared by the project's training loops."""
from __future__ import annotations

import math

import torch


def budget_fraction(elapsed_s: float, minutes: float, step: int, steps: int) -> float:
    """How much of a run's budget is spent: the nearer of the time budget (when ``minutes`` > 0)
    and the step budget, clipped to [0, 1]."""
    frac = step / max(steps, 1)
    if minutes:
        frac = max(frac, elapsed_s / (minutes * 60))
    return min(frac, 1.0)


def set_cosine_lr(optimizer: torch.optim.Optimizer, base_lr: float, fraction: float) -> None:
    """Cosine decay from ``base_lr`` to 0 as ``fraction`` goes from 0 to 1."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
