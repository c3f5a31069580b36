"""JPEG in training: the real codec forward, a differentiable model of it backward.

A straight-through copy (``x + (jpeg(x) - x).detach()``) tells the encoder that every change it
makes reaches the decoder intact; the codec in fact removes most of what is small and of high
frequency. ``simulated_jpeg`` models the codec in torch (YCbCr, 4:2:0 chroma, 8 x 8 DCT,
the libjpeg quantisation tables at a quality, a rounding whose derivative is small near the
quantisation levels, after Shin & Song, "JPEG-resistant adversarial images", 2017), so its
gradient carries the codec's dead zones; ``jpeg_through`` keeps the real codec's output for the
forward pass and takes that gradient.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..robustness import jpeg

# the quantisation tables of the JPEG standard (Annex K), which libjpeg scales by quality
_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
_CHROMA = torch.full((8, 8), 99.0)
_CHROMA[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                               dtype=torch.float32)
_RGB2YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def quant_table(quality: int, chroma: bool = False) -> torch.Tensor:
    """libjpeg's table at ``quality`` (1-100): the standard table scaled, rounded, kept in [1, 255]."""
    q = max(1, min(100, int(quality)))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    base = _CHROMA if chroma else _LUMA
    return ((base * scale + 50) // 100).clamp(1, 255)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m  # orthonormal: m @ m.T = I


def soft_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward; derivative 3 (x - round(x))^2 (zero at the levels, one half way)."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _blocks_transform(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Quantise one plane (N x H x W, H and W multiples of 8) in the DCT domain and transform back."""
    n, h, w = plane.shape
    b = plane.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    c = d @ b @ d.T
    c = soft_round(c / table) * table
    b = d.T @ c @ d
    return b.permute(0, 1, 3, 2, 4).reshape(n, h, w)


def simulated_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """A differentiable model of JPEG at ``quality`` of images in [0, 1] (N x 3 x H x W), 4:2:0
    chroma as Pillow writes by default; sizes that are not multiples of 16 are padded by
    replication and cropped back."""
    n, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    m = _RGB2YCC.to(x)
    ycc = torch.einsum("ij,njhw->nihw", m, x * 255)
    ycc = ycc + torch.tensor([-128.0, 0.0, 0.0], device=x.device)[:, None, None]
    d = _dct_matrix().to(x)
    y = _blocks_transform(ycc[:, 0], quant_table(quality).to(x), d)
    chroma = F.avg_pool2d(ycc[:, 1:], 2)
    cq = quant_table(quality, chroma=True).to(x)
    c = [_blocks_transform(chroma[:, i], cq, d) for i in range(2)]  # half of a multiple of 16: whole blocks
    c = F.interpolate(torch.stack(c, 1), scale_factor=2, mode="nearest")
    out = torch.cat([(y + 128)[:, None], c], 1)
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), out) / 255
    return rgb[..., :h, :w]


def real_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved by Pillow as JPEG at ``quality`` (8-bit) and decoded: what the codec does."""
    return torch.stack([jpeg(img, quality) for img in x.detach().cpu()]).to(x.device)


def jpeg_through(x: torch.Tensor, quality: int, gradient: str = "straight") -> torch.Tensor:
    """The real codec's output, with the gradient of the identity (``straight``) or of
    ``simulated_jpeg`` (``simulated``)."""
    real = real_jpeg(x, quality)
    if gradient == "straight":
        return x + (real - x).detach()
    sim = simulated_jpeg(x, quality)
    return sim + (real - sim).detach()
