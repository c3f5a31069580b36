"""The DIF method: correlation, contrastive loss, EMA fingerprint, training loop, centres."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .config import DIFConfig
from .errors import DIFError
from .sampling import make_batches
from .unet import UNet

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- pure math

def pearson(fingerprint: torch.Tensor, residuals: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation of one fingerprint (1 x C x H x W or C x H x W) with each residual
    (N x C x H x W), over all of C, H and W. Returns a tensor of shape (N,).

    (The authors' code divides by the unbiased std, which scales every value by (n-1)/n; we
    compute the exact coefficient.)
    """
    f = fingerprint.reshape(1, -1)
    r = residuals.reshape(residuals.shape[0], -1)
    if f.shape[1] != r.shape[1]:
        raise ValueError(f"fingerprint has {f.shape[1]} values per image, residuals {r.shape[1]}")
    f = f - f.mean(dim=1, keepdim=True)
    r = r - r.mean(dim=1, keepdim=True)
    num = r @ f.t()
    den = r.norm(dim=1, keepdim=True) * f.norm(dim=1, keepdim=True)
    return (num / (den + eps)).squeeze(1)


def mean_difference(residuals: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The fingerprint with no training: mean fake residual minus mean real residual (1 x C x H x W),
    the yardstick of how far a fixed additive pattern separates the classes."""
    return residuals[labels == 1].mean(0, keepdim=True) - residuals[labels == 0].mean(0, keepdim=True)


def halves(corr: torch.Tensor, labels: torch.Tensor, name: str):
    """The paper's pairs: element i of the batch's first half with element i of its second (an odd
    element out is left unpaired). Returns (c_a, c_b, label_a, label_b); ValueError without a pair."""
    n = corr.shape[0] // 2
    if n == 0:
        raise ValueError(f"the {name} loss needs at least two samples")
    return corr[:n], corr[n:2 * n], labels[:n], labels[n:2 * n]


def contrastive_loss(corr: torch.Tensor, labels: torch.Tensor, margin: float = 0.01) -> torch.Tensor:
    """The paper's pairwise loss. The batch is split in halves and element i of the first half
    is paired with element i of the second. Pairs of different classes are pushed at least
    ``margin`` apart, pairs of the same class pulled together:

        l = relu(margin - |c_a - c_b|) if labels differ else |c_a - c_b|

    Returns the mean over pairs divided by ``margin`` (an odd element out is left unpaired).
    """
    a, b, la, lb = halves(corr, labels, "contrastive")
    different = la != lb
    delta = (a - b).abs()
    loss = torch.where(different, F.relu(margin - delta), delta)
    return loss.mean() / margin


def ranking_loss(corr: torch.Tensor, labels: torch.Tensor, margin: float = 0.01) -> torch.Tensor:
    """The paper's pairs, made one-sided (``--loss ranking``). The batch is paired as in
    ``contrastive_loss``; a pair of different classes costs relu(margin - (c_fake - c_real)), so
    the fake must correlate ``margin`` more than the real, and a pair of one class costs nothing.

    Why: the paper's pull (|c_a - c_b| for one class) asks every fake to correlate equally. A
    generator's trace is stronger in some images than others, and much weaker in the JPEG, blurred
    or moved copies of ``--augment``; the pull then steers the fingerprint away from the trace
    towards what all copies share (docs/dif.md, "The pairwise loss"). Without the sign, pairs
    could also be separated in opposite directions. Returns the mean over pairs divided by ``margin``.
    """
    a, b, la, lb = halves(corr, labels, "ranking")
    sign = torch.where(la == 1, 1.0, -1.0).to(corr.dtype)
    loss = torch.where(la != lb, F.relu(margin - sign * (a - b)), torch.zeros_like(a))
    return loss.mean() / margin


LOSSES = {"paper": contrastive_loss, "ranking": ranking_loss}


def booster_loss(corr_fake_mean: torch.Tensor, corr_real_mean: torch.Tensor, margin: float = 0.01) -> torch.Tensor:
    """The authors' booster term: the correlations with the mean fake and mean real residual of
    the batch are pushed ``margin`` apart (divided by margin)."""
    return F.relu(margin - (corr_fake_mean - corr_real_mean).abs()) / margin


def ema_update(ema: Optional[torch.Tensor], value: torch.Tensor, decay: float = 0.99) -> torch.Tensor:
    """One step of an exponential moving average started at zero: after t steps value k weighs
    (1 - decay) decay^(t-k). Divide by ``ema_norm`` for the bias-corrected average. Starting at
    the first value instead would leave the untrained U-Net's output decay^(t-1) of the weight,
    most of a short training's fingerprint (docs/findings.md)."""
    value = value.detach()
    if ema is None:
        return value * (1.0 - decay)
    return ema * decay + value * (1.0 - decay)


def ema_norm(steps: int, decay: float) -> float:
    """What divides a zero-started average after ``steps`` steps to make its weights sum to 1."""
    return 1.0 - decay ** steps


def centres(train_real: list[float], train_fake: list[float], last: int = 20) -> tuple[float, float]:
    """Mean real and mean fake training correlation over the last ``last`` steps."""
    def m(v: list[float]) -> float:
        arr = np.asarray(v[-last:], dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            raise ValueError("no finite training correlations to compute a centre from")
        return float(arr.mean())
    return m(train_real), m(train_fake)


def nearest_centre(corr: np.ndarray | torch.Tensor, mu_real: float, mu_fake: float) -> np.ndarray:
    """1 (fake) where a correlation is nearer the fake centre than the real one, else 0."""
    c = np.asarray(corr, dtype=np.float64)
    return (np.abs(c - mu_fake) < np.abs(c - mu_real)).astype(np.int64)


def epoch_steps(n_residuals: int, per_image: float, batch_size: int) -> Optional[int]:
    """Batches per epoch when each image gives ``per_image`` residuals (tiles): as many as the
    images alone would give; None (every batch) for one residual per image."""
    if per_image <= 1:
        return None
    return max(1, math.ceil(n_residuals / per_image / batch_size))


def fixed_noise(cfg: DIFConfig, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """The U-Net's fixed input: noise_scale * U[0, 1), 1 x in_channels x H x W."""
    return cfg.noise_scale * torch.rand((1, cfg.in_channels, height, width), generator=generator)


# ----------------------------------------------------------------------------- training

@dataclass
class TrainState:
    """What a training run produces; saved in the authors' checkpoint format."""

    fingerprint: Optional[torch.Tensor] = None  # 1 x C x H x W, on CPU
    train_real: list[float] = field(default_factory=list)
    train_fake: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    epoch: int = 0


def _recent_mean(values: list[float], k: int) -> float:
    """Mean of the finite values among the last ``k`` (NaN when there are none), without warnings."""
    v = np.asarray(values[-k:], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _nanmean(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else math.nan


def train_fingerprint(
    residuals: torch.Tensor,
    labels: torch.Tensor,
    cfg: DIFConfig,
    device: str | torch.device = "cpu",
    on_epoch_end: Optional[Callable[[TrainState], None]] = None,
    progress: bool = False,
    steps_per_epoch: Optional[int] = None,
) -> TrainState:
    """Train a DIF fingerprint on cached residuals (N x 3 x H x W) with labels (0 real, 1 fake).

    The residuals are fixed: the extractor never runs here. Everything random (U-Net weights,
    the input noise, its jitter, batch order, alpha) comes from ``cfg.seed``.
    ``on_epoch_end(state)`` is called after each epoch (checkpointing lives with the caller).
    ``steps_per_epoch`` caps an epoch's batches (tiles: an epoch counts images, not tiles, so
    that more tiles mean more varied batches at the same cost, not more steps).
    """
    from tqdm.auto import tqdm

    if residuals.dim() != 4 or residuals.shape[0] != labels.shape[0]:
        raise ValueError("residuals must be N x C x H x W with one label each")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        unet = UNet(cfg.in_channels, cfg.out_channels, cfg.width, cfg.depth)
    unet.to(device, memory_format=torch.channels_last).train()  # ~10% faster convolutions on CPU
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    _, _, h, w = residuals.shape
    noise = fixed_noise(cfg, h, w, gen)
    res_dev = residuals.to(device)
    lab_dev = labels.to(device)
    state = TrainState()
    ema = None

    pair_loss = LOSSES[cfg.loss]
    low = cfg.train_precision == "bf16"

    bar = tqdm(range(1, cfg.epochs + 1), desc="Training DIF", disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        batches = make_batches(len(residuals), cfg.batch_size, gen)
        for idx in batches[:steps_per_epoch] if steps_per_epoch else batches:
            r = res_dev[idx.to(device)]
            y = lab_dev[idx.to(device)]
            if cfg.alpha < 1.0:
                scale = (1.0 - cfg.alpha) * torch.rand((len(idx), 1, 1, 1), generator=gen) + cfg.alpha
                r = r * scale.to(device)
            jitter = torch.randn(noise.shape, generator=gen) * cfg.noise_std
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
                out = unet((noise + jitter).to(device, memory_format=torch.channels_last))
            out = out.float()  # the correlations, the loss and the EMA fingerprint in fp32 whatever the U-Net ran in
            corr = pearson(out, r)
            loss = pair_loss(corr, y, cfg.margin)
            is_fake = y == 1
            if cfg.boost and is_fake.any() and (~is_fake).any():
                means = torch.stack([r[is_fake].mean(0), r[~is_fake].mean(0)])
                cm = pearson(out, means)
                loss = 0.5 * (loss + booster_loss(cm[0], cm[1], cfg.margin))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

            ema = ema_update(ema, out, cfg.ema)
            with torch.no_grad():
                c = pearson(ema, r)
            state.loss.append(float(loss.detach()))
            state.train_real.append(_nanmean(c[~is_fake]))
            state.train_fake.append(_nanmean(c[is_fake]))
        if not (torch.isfinite(ema).all() and math.isfinite(state.loss[-1])):
            raise DIFError(f"training diverged at epoch {epoch} (NaN or infinite loss or fingerprint; nothing saved "
                           f"for it): try a smaller --lr")
        state.fingerprint = (ema / ema_norm(len(state.loss), cfg.ema)).detach().cpu()  # one loss per step
        state.epoch = epoch
        k = 10
        if progress:  # a batch of one class records NaN for the other: mean over the recorded ones only
            fake_c, real_c = (_recent_mean(v, k) for v in (state.train_fake, state.train_real))
            bar.set_postfix_str(f"Loss {np.mean(state.loss[-k:]):.3f} | Fake C {fake_c:.4f} | Real C {real_c:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(state)
    return state
