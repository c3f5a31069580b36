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


def tile_offsets(H: int, W: int, h: int, w: int, grid: int = 16, limit: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of non-overlapping h x w tiles of an H x W image, on the phase of the
    centre crop: every offset differs from the centre crop's by a multiple of ``grid`` (a
    generator's periodic trace keeps its phase in every tile, as long as its period divides
    ``grid``). One tile per side is the centre crop itself; the block of tiles is centred as far
    as the phase allows. ``limit`` > 0 keeps the tiles nearest the centre (ties by position)."""
    top_c, left_c = crop_offsets(H, W, h, w)

    def starts(L: int, n_px: int, c: int) -> list[int]:
        n = max(1, L // n_px)
        while n > 1:
            s = int(round((L - n * n_px) / 2.0))
            s -= (s - c) % grid  # back onto the centre crop's phase
            if s < 0:
                s += grid
            if s + n * n_px <= L:
                return [s + k * n_px for k in range(n)]
            n -= 1
        return [c]

    if H < h or W < w:
        raise ImageReadError(f"image is {W}x{H}, smaller than the {w}x{h} crop")
    ys, xs = starts(H, h, top_c), starts(W, w, left_c)
    cy, cx = (H - h) / 2.0, (W - w) / 2.0
    out = sorted(((t, l) for t in ys for l in xs), key=lambda o: ((o[0] - cy) ** 2 + (o[1] - cx) ** 2, o))
    return out[:limit] if limit > 0 else out


def tile_stack(img: torch.Tensor, size: tuple[int, int], grid: int = 16, limit: int = 0,
               allow_smaller: bool = False) -> torch.Tensor:
    """T x C x h x w: the tiles of ``tile_offsets`` (a smaller image, with ``allow_smaller``,
    gives its one centre crop of at most ``size``)."""
    H, W = img.shape[-2:]
    h, w = size
    if allow_smaller and (H < h or W < w):
        return center_crop(img, size, allow_smaller=True).unsqueeze(0)
    return torch.stack([img[..., t:t + h, l:l + w] for t, l in tile_offsets(H, W, h, w, grid, limit)])
