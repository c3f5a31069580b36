"""Image perturbations for the robustness suite and for training augmentation.

Every perturbation maps a 3 x H x W float tensor in [0, 1] to another (possibly of another
size) and is deterministic. Names: ``jpeg95 jpeg90 jpeg75 jpeg50 resize0.5 resize2 blur0.5
blur1 shift1 shift4 rot5 crop`` (``all`` = every one), ``mirror``, ``dfx`` (DeepFeatureX's suite),
plus any ``jpegQ``, ``resizeF``, ``blurS`` (sigma), ``blurkK`` (kernel size), ``shiftN``, ``rotD``,
``noiseS`` (Gaussian noise of standard deviation S, in [0, 1] units, clipped), ``cropF`` (keep the
central fraction F of each side). ``crop`` keeps 75% of the area at an odd, off-centre offset;
``shiftN`` and ``rotD`` never put wrapped, padded or corner-fill pixels into what is scored.
"""
from __future__ import annotations

import io
import math
import re
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, ImageFilter

from .errors import DIFError, ImageReadError

Perturbation = Callable[[torch.Tensor], torch.Tensor]
STANDARD = ["jpeg95", "jpeg90", "jpeg75", "jpeg50", "resize0.5", "resize2", "blur0.5", "blur1", "shift1", "shift4",
            "rot5", "crop"]
# DeepFeatureX's robustness tests (Pontorno et al.): JPEG, Gaussian blur by kernel size, scale, mirror, rotation
DFX_SUITE = ["jpeg90", "jpeg80", "jpeg70", "jpeg60", "jpeg50", "blurk3", "blurk7", "blurk15", "resize0.5", "resize2",
             "mirror", "rot45", "rot135"]


def to_pil(x: torch.Tensor) -> Image.Image:
    arr = (x.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr)


def from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Re-save as JPEG at ``quality`` (PIL, 4:2:0 chroma subsampling as most software does)."""
    buf = io.BytesIO()
    to_pil(x).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return from_pil(Image.open(buf))


def png(x: torch.Tensor) -> torch.Tensor:
    """Round-trip through 8-bit PNG (lossless: only quantises to 8 bits)."""
    buf = io.BytesIO()
    to_pil(x).save(buf, format="PNG")
    buf.seek(0)
    return from_pil(Image.open(buf))


def resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Rescale by ``factor`` with antialiased bicubic interpolation."""
    h, w = x.shape[-2:]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return from_pil(to_pil(x).resize(size, Image.BICUBIC, reducing_gap=None))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    return from_pil(to_pil(x).filter(ImageFilter.GaussianBlur(radius=float(sigma))))


def blur_kernel(x: torch.Tensor, k: int) -> torch.Tensor:
    """Gaussian blur with a k x k kernel (k odd) and the sigma OpenCV and torchvision derive from
    it, 0.3 * ((k - 1) / 2 - 1) + 0.8 (0.8 px for k 3, 1.4 for k 7, 2.6 for k 15)."""
    from torchvision.transforms.functional import gaussian_blur

    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    h, w = x.shape[-2:]
    if min(h, w) <= k // 2:  # its reflect padding needs more pixels than that: the image is unusable here
        raise ImageReadError(f"an image of {w}x{h} is too small for a {k}x{k} blur")
    return gaussian_blur(x.unsqueeze(0), [k, k], [sigma, sigma])[0].clamp(0, 1)


def noise(x: torch.Tensor, std: float) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``std`` and clip to [0, 1]. The noise is seeded by
    the image's content, so a perturbation is the same every time it is applied to one image."""
    import zlib

    seed = zlib.crc32(x.detach().cpu().contiguous().numpy().tobytes())
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def mirror(x: torch.Tensor) -> torch.Tensor:
    """Left-right flip."""
    return torch.flip(x, dims=(-1,))


def shift(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move the image ``pixels`` against the generator's pixel grid: the first 2N rows and columns
    are dropped, so the centre (where a centre crop is taken, and where a fingerprint is centred)
    lies N pixels further down-right in the original (N +- 1 where a margin is odd and N is odd:
    the crop rounds half to even). Nothing is wrapped or padded: every pixel scored is a real one,
    also for images no larger than the crop."""
    n = 2 * int(pixels)
    h, w = x.shape[-2:]
    if n >= min(h, w):
        raise ImageReadError(f"an image of {x.shape[-1]}x{x.shape[-2]} is too small for shift{pixels} (needs more than {n} px)")
    return x[..., n:, n:].contiguous()


def inscribed_scale(h: int, w: int, degrees: float) -> float:
    """The largest a such that an a*h x a*w axis-aligned rectangle at the centre of an h x w image
    rotated by ``degrees`` holds no pixel from outside the image."""
    t = math.radians(abs(degrees) % 180)
    c, s_ = abs(math.cos(t)), abs(math.sin(t))
    return min(w / (w * c + h * s_), h / (w * s_ + h * c))


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate by ``degrees`` (bicubic), then keep the largest central rectangle of the same shape
    that holds no corner fill (5 degrees: 92% of each side), so no black corner is ever scored."""
    from .crop import center_crop

    h, w = x.shape[-2:]
    r = from_pil(to_pil(x).rotate(float(degrees), resample=Image.BICUBIC))
    a = inscribed_scale(h, w, degrees)
    return center_crop(r, (max(1, math.floor(h * a) - 2), max(1, math.floor(w * a) - 2))).contiguous()


def roll(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Circular shift down-right, same size (training augmentation only: for images no larger
    than the crop the wrapped rows are scored, which the ``shiftN`` perturbation avoids)."""
    return torch.roll(x, shifts=(int(pixels), int(pixels)), dims=(-2, -1))


def rotate_same_size(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotation keeping the size, corners filled black (training augmentation only)."""
    return from_pil(to_pil(x).rotate(float(degrees), resample=Image.BICUBIC))


CROP_AREA = 0.75


def off_grid_crop(x: torch.Tensor, area: float = CROP_AREA) -> torch.Tensor:
    """A platform's crop that keeps ``area`` of the image (sqrt(area) of each side) at an odd
    offset of about a third of the margin: neither centred nor on the 2/4/8/16 px grid a
    generator's up-sampling leaves, so a centre crop taken afterwards is off the generator's grid."""
    h, w = x.shape[-2:]
    k = math.sqrt(area)
    ch, cw = max(1, round(h * k)), max(1, round(w * k))
    oy, ox = ((h - ch) // 3) | 1, ((w - cw) // 3) | 1
    oy, ox = min(oy, h - ch), min(ox, w - cw)
    return x[..., oy:oy + ch, ox:ox + cw].contiguous()


def centre_crop_fraction(x: torch.Tensor, fraction: float = 0.75) -> torch.Tensor:
    """Keep the central ``fraction`` of each side (an image cropped by a platform)."""
    from .crop import center_crop

    h, w = x.shape[-2:]
    return center_crop(x, (max(1, round(h * fraction)), max(1, round(w * fraction)))).contiguous()


RESIZE_PATTERN = r"resize(\d*\.?\d+)"

_PATTERNS: list[tuple[str, Callable[[str], Perturbation]]] = [
    (r"jpeg(\d{1,3})", lambda a: lambda x: jpeg(x, int(a))),
    (RESIZE_PATTERN, lambda a: lambda x: resize(x, float(a))),
    (r"blur(\d*\.?\d+)", lambda a: lambda x: blur(x, float(a))),
    (r"shift(\d+)", lambda a: lambda x: shift(x, int(a))),
    (r"rot(-?\d*\.?\d+)", lambda a: lambda x: rotate(x, float(a))),
    (r"blurk(\d+)", lambda a: lambda x: blur_kernel(x, int(a))),
    (r"noise(\d*\.?\d+)", lambda a: lambda x: noise(x, float(a))),
    (r"crop(\d*\.?\d+)", lambda a: lambda x: centre_crop_fraction(x, float(a))),
]


def resize_factor(name: str) -> float:
    """The scale a perturbation named ``name`` applies to the image (``resizeF``: F; others 1)."""
    m = re.fullmatch(RESIZE_PATTERN, name.strip().lower())
    return float(m.group(1)) if m else 1.0


def get_perturbation(name: str) -> Perturbation:
    """A perturbation by name (see the module docstring); DIFError for an unknown one."""
    name = name.strip().lower()
    if name in ("none", "clean"):
        return lambda x: x
    if name == "crop":
        return off_grid_crop
    if name == "mirror":
        return mirror
    for pattern, make in _PATTERNS:
        m = re.fullmatch(pattern, name)
        if m:
            arg = m.group(1)
            if pattern.startswith("jpeg") and not 1 <= int(arg) <= 100:
                break
            if pattern.startswith(("resize", "blur(")) and not 0 < float(arg) <= 16:
                break
            if pattern.startswith("blurk") and not (int(arg) % 2 == 1 and 1 <= int(arg) <= 99):
                break
            if pattern.startswith("noise") and not 0 <= float(arg) <= 1:
                break
            if pattern.startswith("crop") and not 0 < float(arg) <= 1:
                break
            return make(arg)
    raise DIFError(f"unknown perturbation {name!r}: use {', '.join(STANDARD)}, mirror, all, dfx (DeepFeatureX's suite), "
                   "or jpegQ/resizeF (0-16]/blurS (0-16]/blurkK (odd)/shiftN/rotD/noiseS [0-1]/cropF (0-1]")


def parse_perturbations(spec: str) -> list[str]:
    """``"jpeg90,shift1"`` or ``"all"`` -> a list of validated names."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        for n in {"all": STANDARD, "dfx": DFX_SUITE}.get(part.lower(), [part.lower()]):
            get_perturbation(n)
            if n not in names:
                names.append(n)
    if not names:
        raise DIFError("no perturbation named (e.g. --perturb jpeg90,shift1 or --perturb all)")
    return names


def compose(first: Optional[Perturbation], then: Optional[Perturbation]) -> Optional[Perturbation]:
    """``then(first(x))``, skipping whichever is None (re-encoding first: the data's format;
    then a perturbation: what happened downstream)."""
    if first is None:
        return then
    if then is None:
        return first
    return lambda x: then(first(x))


def parse_reencode(spec: Optional[str]) -> Optional[Perturbation]:
    """``jpeg:Q`` or ``png`` -> a re-encoding applied to every image of both classes."""
    if not spec:
        return None
    kind, _, arg = spec.lower().partition(":")
    if kind == "png" and not arg:
        return png
    if kind == "jpeg":
        try:
            q = int(arg)
        except ValueError:
            q = -1
        if 1 <= q <= 100:
            return lambda x: jpeg(x, q)
    raise DIFError(f"bad --reencode {spec!r}: use jpeg:Q (Q in 1..100) or png")


AUGMENT_KINDS = ("jpeg", "resize", "blur", "shift", "rotate", "noise")
DEFAULT_AUGMENT_KINDS = "jpeg,resize,blur,shift,rotate"  # measured against jpeg,blur,noise: docs/robustness.md


def parse_augment_kinds(spec: str) -> tuple[str, ...]:
    """The kinds named in a comma-separated ``spec`` (``all``: every kind), in the canonical order
    of ``AUGMENT_KINDS`` so that one set of kinds always draws the same copies; DIFError otherwise."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if names == ["all"]:
        return AUGMENT_KINDS
    unknown = [n for n in names if n not in AUGMENT_KINDS]
    if unknown or not names:
        raise DIFError(f"bad --augment-kinds {spec!r}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'} "
                       f"(use a comma-separated subset of {','.join(AUGMENT_KINDS)}, or all)")
    return tuple(k for k in AUGMENT_KINDS if k in names)


def random_augmentation(rng: np.random.Generator, min_scale: float = 0.5,
                        kinds: tuple[str, ...] = AUGMENT_KINDS[:5]) -> Perturbation:
    """One random perturbation for training augmentation, of a kind drawn uniformly from ``kinds``:
    JPEG 65-100, resize by max(0.5, min_scale)-1.5, blur 0.2-1.2 px, a shift of 1-7 px, a
    rotation of +-6 degrees, Gaussian noise of 0.5-4 grey levels; drawn from ``rng``. (The first
    five kinds in this order draw exactly the copies of the versions before ``kinds`` existed.)"""
    kind = kinds[int(rng.integers(0, len(kinds)))]
    if kind == "jpeg":
        q = int(rng.integers(65, 101))
        return lambda x: jpeg(x, q)
    if kind == "resize":
        f = float(rng.uniform(max(0.5, min(min_scale, 1.5)), 1.5))
        return lambda x: resize(x, f)
    if kind == "blur":
        s = float(rng.uniform(0.2, 1.2))
        return lambda x: blur(x, s)
    if kind == "shift":
        p = int(rng.integers(1, 8))
        return lambda x: roll(x, p)
    if kind == "rotate":
        d = float(rng.uniform(-6, 6))
        return lambda x: rotate_same_size(x, d)
    if kind == "noise":
        sd = float(rng.uniform(0.5, 4)) / 255
        return lambda x: noise(x, sd)
    raise DIFError(f"unknown augmentation kind {kind!r}")
