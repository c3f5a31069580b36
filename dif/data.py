"""Finding ``0_real`` / ``1_fake`` images, robust decoding, cropping and the residual cache."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile

from .errors import DIFError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
REAL_DIR, FAKE_DIR = "0_real", "1_fake"
MAX_PIXELS = 89_478_485  # PIL's own default limit; larger images are refused as decompression bombs


class ImageReadError(DIFError):
    """An image that cannot be used (unreadable, truncated, too large, too small)."""


def is_image_file(path: Path) -> bool:
    """True when the file name has one of the supported extensions (any case)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path) -> list[Path]:
    """All image files directly in ``folder`` (every supported format), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DIFError(f"folder not found: {folder}")
    return sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)


def _to_float_array(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to an H x W x 3 float32 array in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else (255.0 if arr.max() <= 255.0 else 65535.0)
        arr = np.clip(arr / top, 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32)
    if mode != "RGB":
        if mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        img = img.convert("RGB")  # L, LA, RGBA, CMYK, YCbCr, 1, P ...
    return np.asarray(img, dtype=np.float32) / 255.0


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode an image file to a 3 x H x W float32 tensor in [0, 1].

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted; alpha is dropped.
    Raises ``ImageReadError`` for unreadable, truncated or oversized (decompression bomb) files.
    """
    path = Path(path)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(f"{path}: {w}x{h} exceeds the {max_pixels} pixel limit (decompression bomb?)")
                img.load()
                arr = _to_float_array(img)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: cannot decode image (not an image, or an unsupported format)") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{path}: cannot decode image ({msg})") from None
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def center_crop(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Central ``size`` (h, w) crop of a C x H x W tensor; raises if the image is smaller.

    Images smaller than the crop are never padded: padding adds edges that a fingerprint can
    correlate with, so such images are skipped (with a warning) by the callers.
    """
    h, w = size
    H, W = img.shape[-2:]
    if H < h or W < w:
        raise ImageReadError(f"image is {W}x{H}, smaller than the {w}x{h} crop")
    top, left = (H - h) // 2, (W - w) // 2
    return img[..., top:top + h, left:left + w]


@dataclass
class LabelledSet:
    """Image paths of one ``0_real`` / ``1_fake`` folder."""

    root: Path
    real: list[Path]
    fake: list[Path]

    @property
    def paths(self) -> list[Path]:
        return list(self.real) + list(self.fake)

    @property
    def labels(self) -> list[int]:
        return [0] * len(self.real) + [1] * len(self.fake)


def is_labelled_dir(root: str | Path) -> bool:
    """True when ``root`` has a ``0_real`` or ``1_fake`` sub-folder."""
    root = Path(root)
    return (root / REAL_DIR).is_dir() or (root / FAKE_DIR).is_dir()


def find_labelled(root: str | Path) -> LabelledSet:
    """Images of ``root/0_real`` and ``root/1_fake``; clear errors when either is missing or empty."""
    root = Path(root)
    if not root.exists():
        raise DIFError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DIFError(f"not a folder: {root}")
    for sub in (REAL_DIR, FAKE_DIR):
        if not (root / sub).is_dir():
            raise DIFError(f"{root} has no '{sub}' folder (expected {REAL_DIR}/ and {FAKE_DIR}/)")
    found = {}
    for sub in (REAL_DIR, FAKE_DIR):
        d = root / sub
        imgs = list_images(d)
        if not imgs:
            raise DIFError(f"{d} holds no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})")
        found[sub] = imgs
    return LabelledSet(root, found[REAL_DIR], found[FAKE_DIR])


def draw_subset(paths: Sequence[Path], n: Optional[int], seed: int) -> list[Path]:
    """Up to ``n`` paths drawn reproducibly (same seed, same files); all of them if n is None."""
    paths = list(paths)
    if n is None or n >= len(paths):
        return paths
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(paths))[:n])
    return [paths[i] for i in idx]


@dataclass
class ResidualCache:
    """Residuals of decoded, cropped images, computed once and kept for every epoch."""

    paths: list[Path]
    labels: torch.Tensor  # (N,) long: 0 real, 1 fake, -1 unknown
    residuals: torch.Tensor | list[torch.Tensor]  # (N, 3, H, W); a list of blocks when sizes differ
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def compute_residuals(
    paths: Sequence[Path],
    labels: Sequence[int],
    extractor: torch.nn.Module,
    crop: tuple[int, int],
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    progress: bool = False,
    desc: str = "Residuals",
    allow_smaller: bool = False,
) -> ResidualCache:
    """Decode, (optionally transform,) centre-crop and run the frozen extractor on every
    image, once.

    Unreadable images and images smaller than the crop are skipped with a warning and listed
    in ``skipped``; the caller decides whether what is left is enough. With ``allow_smaller``
    (the robustness suite, where a perturbation may shrink an image) a smaller image is kept
    whole up to the crop size, and ``residuals`` becomes a list of same-size blocks when the
    sizes differ.
    """
    from tqdm.auto import tqdm

    kept: list[Path] = []
    kept_labels: list[int] = []
    skipped: list[tuple[Path, str]] = []
    out: list[torch.Tensor] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            if len({tuple(b.shape) for b in batch}) > 1:  # sizes differ: one block per image
                for b in batch:
                    with torch.no_grad():
                        out.append(extractor(b.unsqueeze(0).to(device)).float().cpu())
                batch.clear()
                return
            x = torch.stack(batch).to(device)
            with torch.no_grad():
                out.append(extractor(x).float().cpu())
            batch.clear()

    for path, label in tqdm(list(zip(paths, labels)), desc=desc, disable=not progress, leave=False):
        try:
            img = load_image(path)
            if transform is not None:
                img = transform(img)
            if allow_smaller:
                img = center_crop(img, (min(crop[0], img.shape[-2]), min(crop[1], img.shape[-1])))
            else:
                img = center_crop(img, crop)
        except (ImageReadError, OSError) as exc:
            msg = str(exc)
            log.warning("skipping %s", msg if str(path) in msg else f"{path}: {msg}")
            skipped.append((Path(path), msg))
            continue
        batch.append(img.contiguous())
        kept.append(Path(path))
        kept_labels.append(int(label))
        if len(batch) >= batch_size:
            flush()
    flush()
    if not out:
        res: torch.Tensor | list[torch.Tensor] = torch.empty(0, 3, *crop)
    elif len({tuple(o.shape[1:]) for o in out}) == 1:
        res = torch.cat(out)
    else:
        res = out
    return ResidualCache(kept, torch.tensor(kept_labels, dtype=torch.long), res, skipped)


@dataclass
class TrainingSet:
    """Cached training residuals: clean images first, then ``augment`` perturbed copies of
    each; ``groups`` ties every copy to its source image (for fold splits)."""

    cache: ResidualCache
    groups: np.ndarray


def training_residuals(paths: Sequence[Path], labels: Sequence[int], extractor: torch.nn.Module,
                       crop: tuple[int, int], augment: int = 0, reencode: Optional[str] = None, seed: int = 0,
                       device: str | torch.device = "cpu", progress: bool = False) -> TrainingSet:
    """Residuals of the training images, computed once: each image (re-encoded first when
    ``reencode`` is given) plus ``augment`` randomly perturbed copies (JPEG, resize, blur, shift,
    rotation; drawn reproducibly from ``seed``), all cropped to ``crop``."""
    from .robustness import parse_reencode, random_augmentation

    base = parse_reencode(reencode)
    clean = compute_residuals(paths, labels, extractor, crop, device=device, transform=base, progress=progress)
    groups = [np.arange(len(clean))]
    blocks, all_labels, all_paths = [clean.residuals], [clean.labels], list(clean.paths)
    rng = np.random.default_rng(seed + 4242)

    def augmented(x: torch.Tensor) -> torch.Tensor:
        if base is not None:
            x = base(x)
        scale = max(crop[0] / x.shape[-2], crop[1] / x.shape[-1]) * 1.01
        return random_augmentation(rng, scale)(x)

    for j in range(augment):
        extra = compute_residuals(clean.paths, clean.labels.tolist(), extractor, crop, device=device,
                                  transform=augmented, progress=progress, desc=f"Augmented copy {j + 1}/{augment}")
        keep = {p: i for i, p in enumerate(clean.paths)}
        blocks.append(extra.residuals)
        all_labels.append(extra.labels)
        all_paths += extra.paths
        groups.append(np.array([keep[p] for p in extra.paths], dtype=np.int64))
    cache = ResidualCache(all_paths, torch.cat(all_labels), torch.cat(blocks), clean.skipped)
    return TrainingSet(cache, np.concatenate(groups))
