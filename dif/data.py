"""Finding ``0_real`` / ``1_fake`` images, robust decoding, cropping and the residual cache."""
from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile

from .crop import center_crop, crop_offsets  # noqa: F401  (re-exported: the crop callers import it here)
from .errors import DIFError, ImageReadError, first_line, shown

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif", ".heic", ".heif")
HEIF_EXTENSIONS = (".heic", ".heif")  # phones' photos: decoded by the pillow-heif plugin
REAL_DIR, FAKE_DIR = "0_real", "1_fake"
MAX_PIXELS = 89_478_485  # PIL's own default limit; larger images are refused as decompression bombs

Skipped = list[tuple[Path, str]]


def is_image_file(path: Path) -> bool:
    """True when the name has one of the supported extensions and it is a regular file (a FIFO
    named x.png is never opened: reading it would block)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def scan_folder(folder: str | Path) -> tuple[list[Path], Skipped]:
    """Image files directly in ``folder`` (every supported format), sorted by name, and every
    other entry with the reason it is not used (other formats such as GIF, sub-folders named like
    images, FIFOs). Hidden files (``.name``) and plain sub-folders are passed over silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DIFError(f"folder not found: {shown(folder)}")
    images: list[Path] = []
    skipped: Skipped = []
    try:
        with os.scandir(folder) as it:  # streamed: only the images (and what is skipped) are kept
            for e in it:
                if e.name.startswith("."):
                    continue
                p = Path(e.path)
                image_name = p.suffix.lower() in IMAGE_EXTENSIONS
                try:
                    regular, is_dir = e.is_file(), e.is_dir()
                except OSError:
                    regular = is_dir = False
                if regular and image_name:
                    images.append(p)
                elif image_name:
                    skipped.append((p, "not a regular file"))
                elif regular:
                    skipped.append((p, f"unsupported file type ({p.suffix.lower() or 'no extension'})"))
                elif not is_dir:
                    skipped.append((p, "not a regular file"))
    except OSError as exc:
        raise DIFError(f"cannot read folder {shown(folder)} ({first_line(exc)})") from None
    images.sort(key=lambda p: p.name)
    skipped.sort(key=lambda s: s[0].name)
    return images, skipped


def list_images(folder: str | Path, skipped: Optional[Skipped] = None) -> list[Path]:
    """All image files directly in ``folder``, sorted by name; what is not used is appended to
    ``skipped`` when given."""
    images, other = scan_folder(folder)
    if skipped is not None:
        skipped.extend(other)
    return images


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
        if not np.isfinite(arr).all():
            raise ImageReadError("holds NaN or infinite pixel values")
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
        if path.suffix.lower() in HEIF_EXTENSIONS:
            register_heif()
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageReadError(f"{shown(path)}: {w}x{h} exceeds the {max_pixels} pixel limit (decompression bomb?)")
                frames = getattr(img, "n_frames", 1)
                if frames > 1:  # an animation (GIF, WebP, APNG, AVIF): its first frame stands for it
                    log.warning("%s: animated (%d frames); using its first frame", shown(path), frames)
                    img.seek(0)
                img.load()
                arr = _to_float_array(img)
    except ImageReadError as exc:
        msg = str(exc)
        raise ImageReadError(msg if msg.startswith(shown(path)) else f"{shown(path)}: {msg}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{shown(path)}: refused as a decompression bomb ({first_line(exc)})") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{shown(path)}: cannot decode image (not an image, or an unsupported format)") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
        raise ImageReadError(f"{shown(path)}: cannot decode image ({first_line(exc)})") from None
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


@functools.lru_cache(maxsize=None)
def register_heif() -> None:
    """Teach Pillow to open HEIC / HEIF files (the format of phones' photos) through the
    pillow-heif plugin, once per process; without the plugin, the one line that names it."""
    try:
        import pillow_heif
    except ImportError:
        raise ImageReadError("HEIC / HEIF images need the pillow-heif package (pip install pillow-heif)") from None
    pillow_heif.register_heif_opener()


def package_photos() -> list[Path]:
    """Colour photographs shipped inside packages we already depend on (matplotlib's
    ``grace_hopper.jpg``, scikit-learn's ``china.jpg`` and ``flower.jpg``): data with no download."""
    out = []
    try:
        import matplotlib.cbook as cbook

        out.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:  # pragma: no cover - depends on the matplotlib build
        pass
    try:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        out += sorted(folder.glob("*.jpg"))
    except Exception:  # pragma: no cover
        pass
    return [p for p in out if p.is_file()]


@dataclass
class LabelledSet:
    """Image paths of one ``0_real`` / ``1_fake`` folder, and the entries that are not images."""

    root: Path
    real: list[Path]
    fake: list[Path]
    skipped: Skipped = field(default_factory=list)

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
        raise DIFError(f"data folder not found: {shown(root)}")
    if not root.is_dir():
        raise DIFError(f"not a folder: {shown(root)}")
    for sub in (REAL_DIR, FAKE_DIR):
        if not (root / sub).is_dir():
            raise DIFError(f"{shown(root)} has no '{sub}' folder (expected {REAL_DIR}/ and {FAKE_DIR}/)")
    found = {}
    skipped: Skipped = []
    for sub in (REAL_DIR, FAKE_DIR):
        d = root / sub
        imgs = list_images(d, skipped)
        if not imgs:
            raise DIFError(f"{shown(d)} holds no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})")
        found[sub] = imgs
    return LabelledSet(root, found[REAL_DIR], found[FAKE_DIR], skipped)


def draw_subset(paths: Sequence[Path], n: Optional[int], seed: int) -> list[Path]:
    """Up to ``n`` paths drawn reproducibly (same seed, same files); all of them if n is None."""
    paths = list(paths)
    if n is None or n >= len(paths):
        return paths
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(paths))[:n])
    return [paths[i] for i in idx]


Prepare = Callable[[torch.Tensor], torch.Tensor]


class _DecodeSet(torch.utils.data.Dataset):
    """Decodes image ``i``, applies ``transform`` (re-encoding, a perturbation), then each
    ``prepare`` (a method's crop / resize); an unusable image comes back as its error message."""

    def __init__(self, paths: Sequence[Path], transform: Optional[Prepare], prepares: Sequence[Prepare]) -> None:
        self.paths, self.transform, self.prepares = list(paths), transform, list(prepares)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            img = load_image(path)
            if self.transform is not None:
                img = self.transform(img)
            return i, [prep(img).contiguous() for prep in self.prepares], None
        except (ImageReadError, OSError) as exc:
            msg = str(exc)
            return i, None, msg if shown(path) in msg else f"{shown(path)}: {msg}"


def auto_workers(n_images: int, batch_size: int, workers: Optional[int] = None) -> int:
    """Decoding processes: as asked, else up to 2 (never more than the cores) when there is more
    than one batch to decode; 0 decodes in this process."""
    if workers is not None:
        return max(0, int(workers))
    return min(2, os.cpu_count() or 1) if n_images > batch_size else 0


def stream_images(paths: Sequence[Path], prepares: Sequence[Prepare], transform: Optional[Prepare] = None,
                  batch_size: int = 8, workers: Optional[int] = None, skipped: Optional[Skipped] = None,
                  progress: bool = False, desc: str = "Images") -> Iterator[tuple[list[int], list[list[torch.Tensor]]]]:
    """Decode images in order, ``batch_size`` at a time, in ``workers`` processes (a DataLoader),
    and yield (indices into ``paths``, one list of prepared tensors per ``prepare``) for every
    batch, possibly empty when none of its images could be used. Only one
    batch is held at a time, so memory does not grow with the number of images. Unusable images
    are logged and appended to ``skipped``."""
    from tqdm.auto import tqdm

    ds = _DecodeSet(paths, transform, prepares)
    if not len(ds):
        return
    n_workers = auto_workers(len(ds), batch_size, workers)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=n_workers,
                                         collate_fn=list, prefetch_factor=2 if n_workers else None)
    bar = tqdm(total=len(ds), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for items in loader:
            idx: list[int] = []
            cols: list[list[torch.Tensor]] = [[] for _ in prepares]
            for i, tensors, err in items:
                if err is not None:
                    log.warning("skipping %s", err)
                    if skipped is not None:
                        skipped.append((Path(ds.paths[i]), err))
                    continue
                idx.append(i)
                for col, t in zip(cols, tensors):
                    col.append(t)
            bar.update(len(items))
            yield idx, cols  # also when every image of the batch was unusable: the caller sees its skips
    finally:
        bar.close()


def same_size_groups(tensors: Sequence[torch.Tensor]) -> list[tuple[list[int], torch.Tensor]]:
    """Stack tensors of equal shape together: [(positions, stacked block)] in order of first
    appearance (after a perturbation, images of one batch may differ in size)."""
    groups: dict[tuple, list[int]] = {}
    for j, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(j)
    return [(pos, torch.stack([tensors[j] for j in pos])) for pos in groups.values()]


@dataclass
class ResidualCache:
    """Residuals of decoded, cropped images, computed once and kept (training needs them all)."""

    paths: list[Path]
    labels: torch.Tensor  # (N,) long: 0 real, 1 fake, -1 unknown
    residuals: torch.Tensor | list[torch.Tensor]  # (N, 3, H, W); a list of blocks when sizes differ
    skipped: Skipped = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def run_in_chunks(extractor: torch.nn.Module, x: torch.Tensor, chunk: int = 16,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """``extractor`` over the rows of ``x`` a ``chunk`` at a time (the tiles of a large image
    would otherwise hold every layer's activations of all of them at once)."""
    with torch.no_grad():
        return torch.cat([extractor(x[i:i + chunk].to(device)).float().cpu() for i in range(0, len(x), chunk)])


def tile_prepare(crop: tuple[int, int], tiles: int = 1, grid: int = 16, allow_smaller: bool = False):
    """The per-image preparation of a crop size and tile count: the centre crop (``tiles`` 1,
    a 3 x h x w tensor) or up to ``tiles`` tiles on the centre crop's phase (0: every tile; a
    T x 3 x h x w tensor)."""
    from .crop import tile_stack

    if tiles == 1:
        return functools.partial(center_crop, size=crop, allow_smaller=allow_smaller)
    return functools.partial(tile_stack, size=crop, grid=grid, limit=tiles, allow_smaller=allow_smaller)


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
    workers: Optional[int] = 0,
    tiles: int = 1,
    grid: int = 16,
) -> ResidualCache:
    """Decode, (optionally transform,) centre-crop (or tile: ``tile_prepare``) and run the frozen
    extractor on every image, once, keeping every residual (for training; evaluation streams
    scores instead). With tiles, an image gives one residual per tile, each listed under its path.

    Unreadable images, images smaller than the crop and images whose residual is not finite are
    skipped with a warning and listed in ``skipped``. With ``allow_smaller`` (a perturbation may
    shrink an image) a smaller image is kept whole up to the crop size, and ``residuals`` becomes
    a list of same-size blocks when the sizes differ.
    """
    labels = list(labels)
    kept: list[int] = []
    skipped: Skipped = []
    out: list[torch.Tensor] = []
    prepare = tile_prepare(crop, tiles, grid, allow_smaller)
    for idx, (imgs,) in stream_images(paths, [prepare], transform, batch_size, workers, skipped, progress, desc):
        for pos, block in same_size_groups(imgs):
            per = block.shape[1] if block.dim() == 5 else 1  # tiles per image in this block
            flat = block.flatten(0, 1) if block.dim() == 5 else block
            res = run_in_chunks(extractor, flat, 16, device).reshape(len(pos), per, *flat.shape[1:])
            finite = torch.isfinite(res.flatten(1)).all(dim=1)
            for j, ok in zip(pos, finite.tolist()):
                if not ok:
                    msg = f"{shown(paths[idx[j]])}: residual holds NaN or infinite values"
                    log.warning("skipping %s", msg)
                    skipped.append((Path(paths[idx[j]]), msg))
            keep = [j for j, ok in zip(pos, finite.tolist()) if ok]
            if keep:
                out.append(res[[pos.index(j) for j in keep]].flatten(0, 1))
                kept.extend(idx[j] for j in keep for _ in range(per))
    if not out:
        res_all: torch.Tensor | list[torch.Tensor] = torch.empty(0, 3, *crop)
    elif len({tuple(o.shape[1:]) for o in out}) == 1:
        res_all = torch.cat(out)
    else:
        res_all = out
    # one tensor means every batch was one size group, so ``kept`` is already in the order of ``paths``
    return ResidualCache([Path(paths[i]) for i in kept], torch.tensor([int(labels[i]) for i in kept], dtype=torch.long),
                         res_all, skipped)


class _Stack:
    """Rows appended into one tensor allocated for ``capacity`` rows at the start (it grows, by a
    copy, only if more come than announced)."""

    def __init__(self, first: torch.Tensor, capacity: int) -> None:
        if capacity <= len(first):  # nothing to add (no copies): no copy either
            self.data = first
        else:
            self.data = torch.empty((capacity, *first.shape[1:]), dtype=first.dtype)
            self.data[:len(first)] = first
        self.n = len(first)

    def add(self, rows: torch.Tensor) -> None:
        if len(rows) == 0:
            return
        if self.n + len(rows) > len(self.data):
            self.data = torch.cat([self.data[:self.n], rows])
        else:
            self.data[self.n:self.n + len(rows)] = rows
        self.n += len(rows)

    def tensor(self) -> torch.Tensor:
        return self.data[:self.n]  # a view: a few skipped rows are not worth a copy of all the rest


@dataclass
class TrainingSet:
    """Cached training residuals: clean images first, then ``augment`` perturbed copies of
    each; ``groups`` ties every residual (every tile of every copy) to its source image (for
    fold splits), ``clean`` marks the residuals of the un-perturbed images, and ``units`` counts
    the images and copies (what an epoch's batches are counted in, whatever the tiles)."""

    cache: ResidualCache
    groups: np.ndarray
    clean: np.ndarray
    units: int

    @property
    def per_image(self) -> float:
        """Residuals per image or copy (its tiles), for ``fingerprint.epoch_steps``."""
        return len(self.cache.labels) / max(self.units, 1)


def training_residuals(paths: Sequence[Path], labels: Sequence[int], extractor: torch.nn.Module,
                       crop: tuple[int, int], augment: int = 0, reencode: Optional[str] = None, seed: int = 0,
                       device: str | torch.device = "cpu", progress: bool = False, tiles: int = 1,
                       grid: int = 16, kinds: Optional[str] = None) -> TrainingSet:
    """Residuals of the training images, computed once: each image (re-encoded first when
    ``reencode`` is given) plus ``augment`` randomly perturbed copies (of the comma-separated
    ``kinds``, default ``robustness.DEFAULT_AUGMENT_KINDS``; drawn reproducibly from ``seed``), all
    cropped to ``crop`` (or cut into up to ``tiles`` tiles on the centre crop's phase,
    ``tile_prepare``)."""
    from .robustness import DEFAULT_AUGMENT_KINDS, parse_augment_kinds, parse_reencode, random_augmentation

    base = parse_reencode(reencode)
    kind_set = parse_augment_kinds(kinds or DEFAULT_AUGMENT_KINDS)
    clean = compute_residuals(paths, labels, extractor, crop, device=device, transform=base, progress=progress,
                              tiles=tiles, grid=grid)
    image_id = {p: k for k, p in enumerate(dict.fromkeys(clean.paths))}
    groups = [np.array([image_id[p] for p in clean.paths], dtype=np.int64)]
    # one tensor sized for every copy up front: a list of blocks joined at the end would hold them
    # all twice at that moment (4.8 GB at 512 + 512 images with 2 copies, instead of 2.4)
    stack = _Stack(clean.residuals, len(clean.residuals) * (augment + 1))
    clean.residuals = None  # the stack holds them now
    all_labels, all_paths = [clean.labels], list(clean.paths)
    units = len(image_id)
    rng = np.random.default_rng(seed + 4242)

    def augmented(x: torch.Tensor) -> torch.Tensor:
        if base is not None:
            x = base(x)
        scale = max(crop[0] / x.shape[-2], crop[1] / x.shape[-1]) * 1.01
        return random_augmentation(rng, scale, kind_set)(x)

    label_of = dict(zip(clean.paths, clean.labels.tolist()))  # every tile of an image has its label
    sources = list(image_id)
    for j in range(augment):
        extra = compute_residuals(sources, [label_of[p] for p in sources], extractor, crop,
                                  device=device, transform=augmented, progress=progress,
                                  desc=f"Augmented copy {j + 1}/{augment}", tiles=tiles, grid=grid)
        stack.add(extra.residuals)
        all_labels.append(extra.labels)
        all_paths += extra.paths
        groups.append(np.array([image_id[p] for p in extra.paths], dtype=np.int64))
        units += len(set(extra.paths))
    is_clean = np.r_[np.ones(len(clean.paths), dtype=bool), np.zeros(len(all_paths) - len(clean.paths), dtype=bool)]
    cache = ResidualCache(all_paths, torch.cat(all_labels), stack.tensor(), clean.skipped)
    return TrainingSet(cache, np.concatenate(groups), is_clean, units)
