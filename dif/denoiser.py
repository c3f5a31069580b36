"""Residual extractors: turn images (N x 3 x H x W in [0, 1]) into noise residuals.

Every extractor is a frozen ``nn.Module`` with a ``spec`` string that names it, so that a
fingerprint can record which extractor made it. ``build_extractor(spec)`` makes one from:

- ``highpass`` or ``highpass:SIGMA``: image minus its Gaussian blur (sigma in pixels, default 1).
- ``wavelet`` or ``wavelet:SIGMA``: image minus its wavelet-denoised version (db8, 4 levels,
  BayesShrink soft thresholds for a noise level of SIGMA/255, default 5), the classical PRNU
  residual; uses PyWavelets.
- ``dncnn:PATH``: a DnCNN (the authors' layout) with weights from PATH (see ``save_dncnn``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from .errors import DIFError

DEFAULT_EXTRACTOR = "wavelet"
DNCNN_PAD = 10  # the authors' zero padding around the image before denoising


class ResidualExtractor(nn.Module):
    """Base class: a frozen module mapping images to residuals of the same shape."""

    spec: str = "abstract"

    def freeze(self) -> "ResidualExtractor":
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ResidualExtractor":  # always frozen
        return super().train(False)


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017) in the DIF authors' layout: ``layers`` 3x3 convolutions without
    bias, ``features`` channels, BatchNorm + ReLU in the middle; the output is the residual
    (noise), not the clean image. Parameter names match the authors' ``dncnn.*`` keys."""

    def __init__(self, channels: int = 3, layers: int = 17, features: int = 64) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("DnCNN needs at least 2 layers")
        mods: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            mods += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
        mods.append(nn.Conv2d(features, channels, 3, padding=1, bias=False))
        self.dncnn = nn.Sequential(*mods)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    @property
    def channels(self) -> int:
        return self.dncnn[0].in_channels

    @property
    def layers(self) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in self.dncnn)

    @property
    def features(self) -> int:
        return self.dncnn[0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dncnn(x)


class DnCNNExtractor(ResidualExtractor):
    """Residual = DnCNN output on the zero-padded image (10 px), cropped back, minus the mean
    residual of clean real images when its size matches the image (as in the authors' code)."""

    def __init__(self, net: DnCNN, mean_residual: Optional[torch.Tensor] = None, spec: str = "dncnn") -> None:
        super().__init__()
        self.net = net
        if mean_residual is not None:
            mean_residual = mean_residual.float()
            if mean_residual.dim() == 3:
                mean_residual = mean_residual.unsqueeze(0)
        self.register_buffer("mean_residual", mean_residual, persistent=False)
        self.spec = spec
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = DNCNN_PAD
        res = self.net(F.pad(x, (p, p, p, p)))[..., p:-p, p:-p]
        m = self.mean_residual
        if m is not None and m.shape[-2:] == res.shape[-2:]:
            res = res - m
        return res


def gaussian_kernel1d(sigma: float, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel of radius ceil(3 sigma)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, per channel."""
    k = gaussian_kernel1d(sigma, x.device).to(x.dtype)
    c = x.shape[1]
    r = (k.numel() - 1) // 2
    kx = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), ky, groups=c)


class HighPassExtractor(ResidualExtractor):
    """Residual = image - GaussianBlur(image, sigma): a plain high-pass filter."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if not sigma > 0:
            raise DIFError(f"highpass sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.spec = f"highpass:{self.sigma:g}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - gaussian_blur(x, self.sigma)


def bayes_shrink(coeffs: "np.ndarray", sigma: float) -> "np.ndarray":
    """Soft-threshold one wavelet detail subband with the BayesShrink threshold sigma^2/sigma_x."""
    import numpy as np

    var_x = max(float(np.mean(coeffs * coeffs)) - sigma * sigma, 0.0)
    thr = float(np.abs(coeffs).max()) if var_x == 0.0 else sigma * sigma / math.sqrt(var_x)
    return np.sign(coeffs) * np.maximum(np.abs(coeffs) - thr, 0.0)


def wavelet_denoise(channel: "np.ndarray", sigma: float, wavelet: str = "db8", levels: int = 4) -> "np.ndarray":
    """BayesShrink wavelet denoising of one H x W channel (approximation band kept)."""
    import pywt

    levels = max(1, min(levels, pywt.dwtn_max_level(channel.shape, wavelet)))
    coeffs = pywt.wavedec2(channel, wavelet, mode="symmetric", level=levels)
    out = [coeffs[0]] + [tuple(bayes_shrink(d, sigma) for d in detail) for detail in coeffs[1:]]
    rec = pywt.waverec2(out, wavelet, mode="symmetric")
    return rec[: channel.shape[0], : channel.shape[1]]


class WaveletExtractor(ResidualExtractor):
    """Residual = image - wavelet-denoised image (db8, BayesShrink, noise sigma/255)."""

    def __init__(self, sigma: float = 5.0, wavelet: str = "db8", levels: int = 4) -> None:
        super().__init__()
        try:
            import pywt  # noqa: F401
        except ImportError:  # pragma: no cover - PyWavelets is in requirements.txt
            raise DIFError("the wavelet denoiser needs PyWavelets: pip install PyWavelets") from None
        if not sigma > 0:
            raise DIFError(f"wavelet sigma must be positive, got {sigma}")
        self.sigma, self.wavelet, self.levels = float(sigma), wavelet, int(levels)
        self.spec = f"wavelet:{self.sigma:g}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import numpy as np

        arr = x.detach().cpu().double().numpy()
        out = np.empty_like(arr)
        s = self.sigma / 255.0
        for i in range(arr.shape[0]):
            for c in range(arr.shape[1]):
                out[i, c] = arr[i, c] - wavelet_denoise(arr[i, c], s, self.wavelet, self.levels)
        return torch.from_numpy(out).to(x.device, x.dtype)


# ----------------------------------------------------------------------------- weights I/O

def save_dncnn(path: str | Path, net: DnCNN, mean_residual: Optional[torch.Tensor] = None, meta: Optional[dict] = None) -> None:
    """Save DnCNN weights (+ optional mean residual) as a plain dict loadable with weights_only=True."""
    from .atomic import write_atomic

    payload = {
        "format": "dif-dncnn-v1",
        "layers": net.layers,
        "features": net.features,
        "channels": net.channels,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "mean_residual": None if mean_residual is None else mean_residual.detach().cpu().float(),
        "meta": dict(meta or {}),
    }
    write_atomic(path, lambda p: torch.save(payload, p))


def load_dncnn(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DnCNN, Optional[torch.Tensor], dict]:
    """Load weights written by ``save_dncnn``; raises DIFError on a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"denoiser weights not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with code in it
        raise DIFError(f"cannot read denoiser weights {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != "dif-dncnn-v1":
        raise DIFError(f"{path} is not a DIF DnCNN weights file")
    net = DnCNN(int(payload["channels"]), int(payload["layers"]), int(payload["features"]))
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise DIFError(f"{path}: weights do not fit a DnCNN: {str(exc).splitlines()[0]}") from None
    return net, payload.get("mean_residual"), dict(payload.get("meta") or {})


def build_extractor(spec: Optional[str] = None, device: str | torch.device = "cpu") -> ResidualExtractor:
    """Make a frozen residual extractor from its spec string (see the module docstring)."""
    spec = (spec or DEFAULT_EXTRACTOR).strip()
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "highpass":
        try:
            sigma = float(arg) if arg else 1.0
        except ValueError:
            raise DIFError(f"bad highpass sigma in denoiser spec {spec!r}") from None
        ext: ResidualExtractor = HighPassExtractor(sigma)
    elif kind == "wavelet":
        try:
            sigma = float(arg) if arg else 5.0
        except ValueError:
            raise DIFError(f"bad wavelet sigma in denoiser spec {spec!r}") from None
        ext = WaveletExtractor(sigma)
    elif kind == "dncnn":
        if not arg:
            raise DIFError("the dncnn denoiser needs a weights file: --denoiser dncnn:PATH")
        net, mean, _ = load_dncnn(arg)
        ext = DnCNNExtractor(net, mean, spec=f"dncnn:{arg}")
    else:
        raise DIFError(f"unknown denoiser {spec!r}: use wavelet[:SIGMA], highpass[:SIGMA] or dncnn:PATH")
    return ext.to(device)
