"""The one centre crop, shared by decoding (``data``), perturbations (``robustness``) and scoring
(``detect``): it lives below all of them so that none imports another for it."""
from __future__ import annotations

import torch

from .errors import ImageReadError


def crop_offsets(H: int, W: int, h: int, w: int) -> tuple[int, int]:
    """Top-left corner of the central h x w window of an H x W array, placed as torchvision's
    ``CenterCrop`` (the authors' transform) places it: ``int(round((H - h) / 2))``, Python's
    round-half-to-even, so an odd margin of 327 px starts at 164, not 163 (the fingerprint's grid
    must fall on the same pixels as in their evaluation)."""
    return int(round((H - h) / 2.0)), int(round((W - w) / 2.0))


def center_crop(img: torch.Tensor, size: tuple[int, int], allow_smaller: bool = False) -> torch.Tensor:
    """Central ``size`` (h, w) crop of a ... x H x W tensor. An image smaller than the crop raises
    ImageReadError, or with ``allow_smaller`` is cropped to at most ``size`` on each side.

    Images smaller than the crop are never padded: padding adds edges that a fingerprint can
    correlate with, so such images are skipped (with a warning) by the callers.
    """
    H, W = img.shape[-2:]
    h, w = size
    if allow_smaller:
        h, w = min(h, H), min(w, W)
    if H < h or W < w:
        raise ImageReadError(f"image is {W}x{H}, smaller than the {w}x{h} crop")
    top, left = crop_offsets(H, W, h, w)
    return img[..., top:top + h, left:left + w]
