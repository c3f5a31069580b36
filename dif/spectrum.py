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
