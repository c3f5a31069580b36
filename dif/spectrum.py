"""FFT spectra of fingerprints and images (pure functions; plotting lives in plots.py)."""
from __future__ import annotations

import numpy as np
import torch


def to_hwc(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any of 1xCxHxW, CxHxW (C in 1..4), HxWxC or HxW as a float64 HxWxC array."""
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    a = a.astype(np.float64)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 2:
        a = a[..., None]
    elif a.ndim == 3 and a.shape[0] in (1, 2, 3, 4) and a.shape[-1] not in (1, 2, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim != 3:
        raise ValueError(f"cannot interpret array of shape {a.shape} as an image")
    return a


def log_spectrum(img: np.ndarray | torch.Tensor, eps: float = 1e-12) -> np.ndarray:
    """Centred log-magnitude spectrum (natural log), averaged over channels: H x W.

    The mean of each channel is removed first so the DC term does not dominate.
    """
    a = to_hwc(img)
    a = a - a.mean(axis=(0, 1), keepdims=True)
    f = np.fft.fft2(a, axes=(0, 1), norm="forward")
    mag = np.abs(np.fft.fftshift(f, axes=(0, 1))).mean(axis=2)
    return np.log(mag + eps)


def spectrum_image(img: np.ndarray | torch.Tensor, low: float = 1.0, high: float = 99.9) -> np.ndarray:
    """``log_spectrum`` scaled to [0, 1] between two percentiles, for display."""
    s = log_spectrum(img)
    lo, hi = np.percentile(s, [low, high])
    return np.clip((s - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def peak_ratio(img: np.ndarray | torch.Tensor, exclude_dc: int = 1) -> float:
    """Largest magnitude over the median magnitude of the spectrum (a periodicity measure)."""
    a = to_hwc(img)
    a = a - a.mean(axis=(0, 1), keepdims=True)
    mag = np.abs(np.fft.fft2(a, axes=(0, 1))).mean(axis=2)
    mag[:exclude_dc, :exclude_dc] = 0.0
    return float(mag.max() / max(np.median(mag), 1e-12))


def circular_ncc(fingerprint: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of a fingerprint (C x H x W or 1 x C x H x W) with each
    residual (N x C x H x W) at every circular shift, via the FFT: N x H x W, where entry
    [n, dy, dx] is the Pearson correlation of the fingerprint with the residual rolled by
    (-dy, -dx), i.e. sum_x f(x) r(x + d) over normalised, mean-free arrays."""
    f = fingerprint.reshape(-1, *fingerprint.shape[-3:])[0].double()
    r = residuals.double()
    f = f - f.mean()
    r = r - r.mean(dim=(1, 2, 3), keepdim=True)
    den = f.norm() * r.flatten(1).norm(dim=1)
    spec = torch.fft.rfft2(r) * torch.conj(torch.fft.rfft2(f)).unsqueeze(0)
    ncc = torch.fft.irfft2(spec.sum(dim=1), s=r.shape[-2:])
    return (ncc / (den.view(-1, 1, 1) + 1e-12)).float()


def shift_window(ncc: torch.Tensor, max_shift: int) -> torch.Tensor:
    """The N x (2m+1) x (2m+1) block of a circular NCC map with shifts in [-m, m]."""
    h, w = ncc.shape[-2:]
    m = max(0, min(int(max_shift), (min(h, w) - 1) // 2))
    idx_y = torch.arange(-m, m + 1) % h
    idx_x = torch.arange(-m, m + 1) % w
    return ncc[:, idx_y][:, :, idx_x]
