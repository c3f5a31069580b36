"""Artificial fingerprints at a photo's own size: the whole-photo protocol.

A photo of any size H x W (any aspect ratio) is brought down whole to a G R x G R thumbnail
(antialiased; the aspect is not kept, nothing is cropped), with R the networks' resolution (64 px
for the default pair) and G the grid (``grid_for``, from the shorter side): 4 from 8 R (512 px), 3
from 6 R, so that the thumbnail survives the photo being halved; 2 down to 1.5 R (96 px); 1 below.
The thumbnail's G x G tiles of R x R are fingerprinted by the encoder with the same bits; the
change (the tiles' changes side by side) is brought to H x W (bicubic), scaled so that this photo's
PSNR is the pair's set value, and added to the photo at full size. The decoder reads each tile of
the photo's thumbnail and the tiles' logits are averaged: up to sixteen readings of one string, so
the change can be weak (38.5 dB) and still decode.

The fingerprint is thus a smooth field over the whole frame: it holds none of the fine detail that
JPEG, blur and halving remove, and the photo keeps its size. A reader does not know the grid, and
a crop moves the tiles: ``read_frame`` tries grids 2, 3 and 4 and the photo as the centre of larger
frames (``CROP_SEARCH``, then finer steps around the best), the missing border filled with the
photo's mean colour (grids 3 and 4) or its edge pixels repeated outward (grid 2, whose four tiles
all touch the border: ``EDGE_FILL_GRIDS``), and keeps the frame whose tiles agree most
(``agreement``) on the photo with seeded noise added (``READ_NOISE``: on smooth content the
decoder reads the content alike in every tile of a wrong frame, and the noise drowns that), then
reads the bits from the photo itself at that frame; a photo under 1.5 R is read with grid 1 alone. The networks are a square pair's, unchanged: a whole-photo pair is
one whose weight files record the protocol and its PSNR (``python -m dif.artificial whole``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .models import FingerprintDecoder, FingerprintEncoder

GRIDS = (1, 2, 3, 4)
READ_GRIDS = (2, 3, 4)  # the grids read_frame compares (grid 1 is for tiny photos, read as they are)
REFINE = (-0.006, -0.004, -0.002, 0.002, 0.004, 0.006)  # read_frame's second look, around its first choice
# the sides' fractions read_frame tries (a centre crop keeping 56-100% of the area)
CROP_SEARCH = tuple(round(1 - 0.0125 * i, 4) for i in range(21))
EDGE_FILL_GRIDS = (2,)  # grids whose missing border is filled with the edge pixels, not the mean colour
READ_NOISE = 0.1  # std of the seeded noise on the photo that read_frame chooses the frame on (images in [0, 1])


def check_psnr(psnr_db: float) -> float:
    """A whole-photo pair's strength, from 20 to 80 dB (DIFError otherwise)."""
    from ..errors import DIFError

    if not 20 <= psnr_db <= 80:
        raise DIFError(f"--psnr must be from 20 to 80 dB, got {psnr_db:g}")
    return psnr_db


def thumbnail(x: torch.Tensor, side: int) -> torch.Tensor:
    """N x 3 x H x W -> N x 3 x side x side: the whole frame, antialiased bilinear (aspect not kept)."""
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def tiny(h: int, w: int, res: int) -> bool:
    """A photo under 1.5 R on its shorter side: fingerprinted and read with one tile."""
    return min(h, w) < 1.5 * res


def grid_for(h: int, w: int, res: int) -> int:
    """The grid a photo of h x w is fingerprinted with (see the module docstring)."""
    if tiny(h, w, res):
        return 1
    return max(g for g in GRIDS if g == 2 or 2 * g * res <= min(h, w))  # halved, it still holds the thumbnail


def to_tiles(t: torch.Tensor, res: int) -> torch.Tensor:
    """N x 3 x GR x GR -> (N G G) x 3 x R x R, row by row."""
    n, c, side, _ = t.shape
    g = side // res
    return t.reshape(n, c, g, res, g, res).permute(0, 2, 4, 1, 3, 5).reshape(n * g * g, c, res, res)


def from_tiles(tiles: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of ``to_tiles``."""
    _, c, res, _ = tiles.shape
    g = math.isqrt(len(tiles) // n)
    return tiles.reshape(n, g, g, c, res, res).permute(0, 3, 1, 4, 2, 5).reshape(n, c, g * res, g * res)


def rms_for_psnr(psnr_db: float) -> float:
    """The root-mean-square change (images in [0, 1]) of a PSNR."""
    return 10 ** (-psnr_db / 20)


def frame_change(encoder: FingerprintEncoder, bits: torch.Tensor, x: torch.Tensor, psnr_db: float) -> torch.Tensor:
    """The change ``embed_frame`` adds to each photo of ``x`` (N x 3 x H x W), before clipping."""
    res, n = encoder.resolution, len(x)
    grid = grid_for(*x.shape[-2:], res)
    t = to_tiles(thumbnail(x, grid * res), res)
    r = from_tiles(encoder(bits.repeat_interleave(grid * grid, 0), t) - t, n)
    if r.shape[-2:] != x.shape[-2:]:
        r = F.interpolate(r, size=x.shape[-2:], mode="bicubic", align_corners=False,
                          antialias=x.shape[-1] < r.shape[-1] or x.shape[-2] < r.shape[-2])
    rms = r.pow(2).flatten(1).mean(1).sqrt().clamp_min(1e-8)
    return r * (rms_for_psnr(psnr_db) / rms)[:, None, None, None]


def embed_frame(encoder: FingerprintEncoder, bits: torch.Tensor, x: torch.Tensor, psnr_db: float) -> torch.Tensor:
    """Fingerprinted photos at their own size (not yet quantised to 8 bits)."""
    return (x + frame_change(encoder, bits, x, psnr_db)).clamp(0, 1)


def tile_logits(decoder: FingerprintDecoder, x: torch.Tensor, grid: int) -> torch.Tensor:
    """N x G^2 x bits: the decoder's logits for each tile of each photo's thumbnail."""
    res = decoder.resolution
    return decoder(to_tiles(thumbnail(x, grid * res), res)).reshape(len(x), grid * grid, -1)


def inside_weights(fraction: float, res: int, grid: int) -> torch.Tensor:
    """G^2 weights: the share of each tile that lies in the photo when the photo is the central
    ``fraction`` of each side of the frame (1: every tile whole)."""
    side = grid * res
    lo, hi = side * (1 - fraction) / 2, side * (1 + fraction) / 2
    edges = np.arange(grid + 1) * res
    share = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, res) / res
    return torch.tensor(np.outer(share, share).reshape(-1), dtype=torch.float32)


def uncrop(x: torch.Tensor, fraction: float, fill: str = "mean") -> torch.Tensor:
    """N x 3 x H x W as the centre ``fraction`` of each side of a larger frame (what ``read_frame``
    tries when a photo may have been cropped), the border filled with each photo's mean colour
    (``fill`` "mean") or its edge pixels repeated outward ("edge")."""
    if fraction >= 1:
        return x
    h, w = x.shape[-2:]
    fh, fw = round(h / fraction), round(w / fraction)
    top, left = (fh - h) // 2, (fw - w) // 2
    if fill == "edge":
        return F.pad(x, (left, fw - w - left, top, fh - h - top), mode="replicate")
    out = x.mean((-2, -1), keepdim=True).expand(*x.shape[:-2], fh, fw).clone()
    out[..., top:top + h, left:left + w] = x
    return out


def canvas_side(res: int) -> int:
    """The side of the square every photo is first brought to for reading: twice the largest
    thumbnail's."""
    return 2 * max(GRIDS) * res


class ReadCanvas:
    """A photo (3 x H x W) as ``read_frame`` reads it: brought whole to ``canvas_side``, or a tiny
    photo to R x R (picklable, for the decoding workers). Reading from it rather than the full-size
    photo lets photos of different sizes share a batch, with the same bits."""

    def __init__(self, res: int) -> None:
        self.res = res

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        side = self.res if tiny(*img.shape[-2:], self.res) else canvas_side(self.res)
        return thumbnail(img[None], side)[0].clamp(0, 1)


def frame_tiles(decoder: FingerprintDecoder, x: torch.Tensor, fraction: float = 1.0, grid: int = 4
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x G^2 x bits tile logits, G^2 weights: each tile's share inside the photo) of photos (full
    size or their ``ReadCanvas``) read as the centre ``fraction`` of a frame (``uncrop``)."""
    w = inside_weights(fraction, decoder.resolution, grid).to(x.device)
    if not tiny(*x.shape[-2:], decoder.resolution):
        x = thumbnail(x, canvas_side(decoder.resolution))
    fill = "edge" if grid in EDGE_FILL_GRIDS else "mean"  # grid 2: every tile touches the border
    return tile_logits(decoder, uncrop(x, fraction, fill), grid), w


def frame_logits(decoder: FingerprintDecoder, x: torch.Tensor, fraction: float = 1.0, grid: int = 4
                 ) -> torch.Tensor:
    """N x bits: the tiles' logits averaged, each weighted by its share inside the photo."""
    t, w = frame_tiles(decoder, x, fraction, grid)
    return (t * w[:, None]).sum(1) / w.sum()


def agreement(tiles: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """N: how much the tiles agree, mean over bits of |sum w L| / sum w |L|, times the square root of
    the effective number of tiles, (sum w)^2 / sum w^2. About 1 where the tiles read noise whatever
    their number, about sqrt(G^2) where they read one string: readings of different grids and
    frames compare on one scale (a decoder's raw confidence does not: one tile of noise is read
    more confidently than sixteen averaged)."""
    wt = w[None, :, None]
    ratio = (tiles * wt).sum(1).abs() / (tiles.abs() * wt).sum(1).clamp_min(1e-12)
    return ratio.mean(1) * (w.sum() / w.pow(2).sum().sqrt())


def choice_noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` (N x 3 x S x S canvases) with seeded Gaussian noise of ``sigma`` added: one field, the
    same for every photo, so that a reading never depends on the other photos of its batch."""
    if sigma <= 0:
        return x
    field = torch.randn(x.shape[-3:], generator=torch.Generator().manual_seed(0))
    return x + sigma * field.to(x.device, x.dtype)


def read_frame(decoder: FingerprintDecoder, x: torch.Tensor, search: Sequence[float] = CROP_SEARCH,
               grids: Sequence[int] = READ_GRIDS, refine: Sequence[float] = REFINE,
               noise: float = READ_NOISE) -> tuple[torch.Tensor, torch.Tensor]:
    """(N x bits logits, N fractions): for each photo (all of one size), the grid and frame among
    ``grids`` and ``search`` whose tiles agree most (``agreement``), then among that grid's frames
    ``refine`` away from the best one (a frame 0.6% too large already costs bits), and the fraction
    it assumed; a tiny photo is read with one tile, whole. The frame is chosen on the photo with
    seeded noise of ``noise`` added (``choice_noise``): on smooth content the tiles of a wrong frame
    agree on what the decoder reads from the content itself, and noise drowns that agreement while
    the fingerprint's, read from every tile alike, stays. The bits are then read from the photo as
    it is, at the frame chosen. Choosing by agreement alone, never by what the bits say, keeps a
    clean photo's bits random."""
    if tiny(*x.shape[-2:], decoder.resolution):
        return frame_logits(decoder, x, 1.0, 1), torch.ones(len(x))
    x = thumbnail(x, canvas_side(decoder.resolution))  # once, not per reading
    look = choice_noise(x, noise)
    best_c = torch.full((len(x),), -math.inf, device=x.device)
    best_f, best_g = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
    for g, f in ((g, f) for g in grids for f in search):
        conf = agreement(*frame_tiles(decoder, look, f, g))
        better = conf > best_c
        best_c = torch.where(better, conf, best_c)
        best_f = torch.where(better, torch.full_like(conf, f), best_f)
        best_g = torch.where(better, torch.full_like(conf, g), best_g)
    for i in range(len(x)):  # each photo's own neighbourhood
        g, f0 = int(best_g[i]), float(best_f[i])
        for f in (round(f0 + d, 4) for d in refine):
            if not min(search) - 0.01 <= f < 1:
                continue
            conf = float(agreement(*frame_tiles(decoder, look[i:i + 1], f, g))[0])
            if conf > best_c[i]:
                best_c[i], best_f[i] = conf, f
    logits = x.new_empty(len(x), decoder.fingerprint_length)
    for g, f in sorted({(int(g), round(float(f), 4)) for g, f in zip(best_g, best_f)}):  # one pass per frame chosen
        idx = ((best_g == g) & ((best_f - f).abs() < 1e-6)).nonzero().flatten()
        logits[idx] = frame_logits(decoder, x[idx], f, g)
    return logits, best_f.cpu()
