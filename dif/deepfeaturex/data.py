"""DeepFeatureX data: the class / architecture layout, the guidance CSV and its split, the
deliberately unbalanced base-model sets, and images resized once and kept in memory."""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..atomic import write_bytes_atomic
from ..data import REAL_DIR, Skipped, scan_folder, stream_images
from ..errors import DIFError, first_line, shown

log = logging.getLogger(__name__)
SPLITS = ("base", "complete", "test")
REAL_NAMES = ("real", REAL_DIR)


@dataclass
class Item:
    path: Path
    label: int          # index into the sorted class names
    model: str          # the architecture (generator) folder
    split: str = ""


def find_dataset(root: str | Path) -> tuple[list[str], list[Item], Skipped]:
    """Classes and images of a data root: ``ROOT/<class>/<architecture>/images`` (the authors'
    ``gan_generated / dm_generated / real``; images directly in a class folder form one
    architecture named after it), or ``ROOT/0_real`` + ``ROOT/1_fake`` (two classes). Classes are
    sorted by name, so the authors' layout gives dm=0, gan=1, real=2 as in their code."""
    root = Path(root)
    if not root.is_dir():
        raise DIFError(f"data folder not found: {shown(root)}")
    try:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DIFError(f"cannot read {shown(root)} ({first_line(exc)})") from None
    if len(classes) < 2:
        raise DIFError(f"{shown(root)} needs at least two class folders (e.g. real/, gan_generated/, dm_generated/ "
                       f"or 0_real/ and 1_fake/); found {len(classes)}")
    if not any(c in REAL_NAMES for c in classes):
        raise DIFError(f"{shown(root)} has no real class folder (named 'real' or '0_real'; found {', '.join(classes)})")
    items: list[Item] = []
    skipped: Skipped = []
    for k, c in enumerate(classes):
        folder = root / c
        images, other = scan_folder(folder)
        skipped.extend(other)
        items += [Item(p, k, c) for p in images]
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and p.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"))
        for sub in subs:
            images, other = scan_folder(sub)
            skipped.extend(other)
            items += [Item(p, k, sub.name) for p in images]
        if not any(it.label == k for it in items):
            raise DIFError(f"{shown(folder)} holds no images (directly or in architecture sub-folders)")
    return classes, items, skipped


def real_index(classes: Sequence[str]) -> int:
    for name in REAL_NAMES:
        if name in classes:
            return list(classes).index(name)
    raise DIFError(f"no real class among {', '.join(classes)}")


def stratified_split(items: list[Item], shares: Sequence[float] = (0.4, 0.4, 0.2), names: Sequence[str] = SPLITS,
                     seed: int = 0) -> list[Item]:
    """Assign each image a split, drawn reproducibly *within each (class, architecture) folder*
    (the authors drew 40/40/20 over the whole set, unseeded)."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.label, it.model), []).append(i)
    out = [Item(it.path, it.label, it.model) for it in items]
    for key in sorted(groups, key=lambda k: (k[0], k[1])):
        idx = rng.permutation(groups[key])
        bounds = np.round(np.cumsum(shares) / np.sum(shares) * len(idx)).astype(int)
        start = 0
        for name, end in zip(names, bounds):
            for i in idx[start:end]:
                out[i].split = name
            start = end
    return out


def write_guidance(path: str | Path, classes: Sequence[str], items: Sequence[Item]) -> Path:
    """guidance.csv: ``label,image_path,model,split`` (their three columns plus our split), and
    the class names in a ``# classes:`` first line that their reader would skip as a comment."""
    buf = io.StringIO()
    w = csv.writer(buf)  # quotes a name holding a comma, a quote or a newline
    w.writerow(["label", "image_path", "model", "split"])
    w.writerows([[it.label, os.fspath(it.path), it.model, it.split] for it in items])
    text = f"# classes: {','.join(classes)}\n" + buf.getvalue()
    # a file name that is not UTF-8 is written as its own bytes, which read_guidance gives back exactly
    return write_bytes_atomic(path, text.encode("utf-8", "surrogateescape"))


def read_guidance(path: str | Path, seed: int = 0) -> tuple[Optional[list[str]], list[Item]]:
    """Read a guidance CSV, ours or the authors' (``label,image_path,model``; dm=0, gan=1, real=2);
    without a split column the 40/40/20 split is drawn as ``stratified_split`` does. Every file
    it names must exist."""
    path = Path(path)
    try:  # utf-8-sig: a spreadsheet's byte-order mark; surrogateescape: file names that are not UTF-8
        text = path.read_bytes().decode("utf-8-sig", "surrogateescape")
    except OSError as exc:
        raise DIFError(f"cannot read guidance CSV {shown(path)} ({first_line(exc)})") from None
    classes, skip = None, 0
    if text.startswith("# classes:"):
        head, _, text = text.partition("\n")
        classes = [c.strip() for c in head.split(":", 1)[1].split(",") if c.strip()]
        skip = 1
    reader = csv.DictReader(io.StringIO(text, newline=""))
    need = ("label", "image_path", "model")
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise DIFError(f"{shown(path)} is not a readable CSV ({first_line(exc)})") from None
    if not fields or not set(need) <= set(fields):
        raise DIFError(f"{shown(path)}: expected the columns label,image_path,model (got {fields})")
    items, missing = [], []
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DIFError(f"{shown(path)} line {reader.line_num + skip}: {first_line(exc)}") from None
        n = reader.line_num + skip
        if None in row or any(row.get(k) is None for k in need):  # too many fields, or too few
            raise DIFError(f"{shown(path)} line {n}: expected the fields {','.join(fields)}")
        if not row["model"].strip() or not row["image_path"]:
            raise DIFError(f"{shown(path)} line {n}: the {'model' if row['image_path'] else 'image_path'} field is empty")
        try:
            label = int(row["label"])
        except (TypeError, ValueError):
            raise DIFError(f"{shown(path)} line {n}: label {row['label']!r} is not a whole number") from None
        p = Path(row["image_path"])
        if not p.is_absolute():
            p = path.parent / p
        if not p.is_file():
            missing.append(p)
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise DIFError(f"{shown(path)} line {n}: split {split!r} is not one of {', '.join(SPLITS)}")
        items.append(Item(p, label, row["model"], split))
    if missing:
        raise DIFError(f"{shown(path)} names {len(missing)} missing file(s), e.g. {shown(missing[0])}")
    if not items:
        raise DIFError(f"{shown(path)} lists no images")
    labels = sorted({it.label for it in items})
    if classes is None:
        authors = ["dm_generated", "gan_generated", "real"]
        classes = authors if labels == [0, 1, 2] else [str(k) for k in range(max(labels) + 1)]
    if labels[0] < 0 or labels[-1] >= len(classes):
        raise DIFError(f"{shown(path)}: labels must be in 0..{len(classes) - 1}")
    if not all(it.split for it in items):
        items = stratified_split(items, seed=seed)
    return classes, items


def base_model_set(items: Sequence[Item], main: int, perc_to_take: float = 0.04, seed: int = 0) -> list[Item]:
    """The deliberately unbalanced set of the base model for class ``main``: every image of that
    class, plus a random ``perc_to_take`` share (at least one image) of every architecture folder
    of the other classes. Labels become 1 (main class) and 0 (the rest)."""
    rng = np.random.default_rng(seed + 1000 * (main + 1))
    out = [Item(it.path, 1, it.model, it.split) for it in items if it.label == main]
    groups: dict[tuple[int, str], list[Item]] = {}
    for it in items:
        if it.label != main:
            groups.setdefault((it.label, it.model), []).append(it)
    for key in sorted(groups):
        g = groups[key]
        n = max(1, int(round(perc_to_take * len(g))))
        for i in sorted(rng.choice(len(g), size=min(n, len(g)), replace=False)):
            out.append(Item(g[i].path, 0, g[i].model, g[i].split))
    return out


def train_val_split(labels: Sequence[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train / validation indices (every class keeps at least one training image)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(len(idx) - 1, int(round(val_fraction * len(idx))))
        va += idx[:n_val].tolist()
        tr += idx[n_val:].tolist()
    return np.sort(np.array(tr, dtype=np.int64)), np.sort(np.array(va, dtype=np.int64))


def resize_square(size: int, crop: int = 0):
    """The authors' input: resize to size x size (antialiased bilinear), then, for ViT, a central
    crop x crop. A picklable function of a 3 x H x W tensor in [0, 1]."""
    import functools

    return functools.partial(_resize, size=size, crop=crop)


def _resize(img: torch.Tensor, size: int, crop: int) -> torch.Tensor:
    from torchvision.transforms.functional import center_crop, resize

    out = resize(img, [size, size], antialias=True)
    if crop and crop < size:
        out = center_crop(out, [crop, crop])
    return out.clamp_(0, 1)


CACHE_BYTES = 4 << 30  # resized images up to this size are kept in memory; beyond it they are read per batch


class DiskImages:
    """Resized images read from disk when a batch is asked for (``x[indices]`` -> N x 3 x S x S
    uint8), decoded by ``workers`` threads: for sets too large to keep in memory, so memory stays
    flat in the number of images. Indexing, slicing and ``len`` behave like the in-memory tensor."""

    def __init__(self, paths: Sequence[Path], size: int, crop: int = 0, workers: int = 2) -> None:
        self.paths, self.size, self.crop, self.workers = list(paths), size, crop, max(1, workers)
        self._prep = resize_square(size, crop)

    def __len__(self) -> int:
        return len(self.paths)

    def _one(self, i: int) -> torch.Tensor:
        from ..data import load_image

        return (self._prep(load_image(self.paths[i])) * 255).round().to(torch.uint8)

    def __getitem__(self, idx) -> torch.Tensor:
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(idx, slice):
            idx = range(*idx.indices(len(self)))
        idx = [int(i) for i in (idx.tolist() if isinstance(idx, torch.Tensor) else idx)]
        with ThreadPoolExecutor(self.workers) as pool:  # PIL decodes without holding the GIL
            return torch.stack(list(pool.map(self._one, idx)))

    def take(self, idx: Sequence[int]) -> "DiskImages":
        return DiskImages([self.paths[i] for i in idx], self.size, self.crop, self.workers)


def subset(images, idx: Sequence[int]):
    """The images at ``idx`` of an in-memory tensor or of a DiskImages (which stays on disk)."""
    return images.take(list(idx)) if isinstance(images, DiskImages) else images[list(idx)]


def load_resized(paths: Sequence[Path], size: int, crop: int = 0, batch_size: int = 32, workers: Optional[int] = None,
                 progress: bool = False, desc: str = "Images", transform=None,
                 max_bytes: int = CACHE_BYTES) -> tuple[torch.Tensor | DiskImages, list[int], Skipped]:
    """Every image decoded and resized once (DataLoader workers) and kept as uint8 (a 256 px image
    is 192 KB) when they fit in ``max_bytes``; otherwise checked once and read per batch
    (DiskImages). Returns (images, the indices of ``paths`` kept, skipped files)."""
    skipped: Skipped = []
    kept: list[int] = []
    blocks: list[torch.Tensor] = []
    side = crop if crop and crop < size else size
    keep = len(paths) * 3 * side * side <= max_bytes or transform is not None
    prepare = resize_square(size, crop) if keep else _decodable
    for idx, (imgs,) in stream_images(paths, [prepare], transform, batch_size, workers, skipped, progress, desc):
        if keep and imgs:
            blocks.append((torch.stack(imgs) * 255).round().to(torch.uint8))
        kept += idx
    if not keep:
        log.info("%d images do not fit in %.1f GB: reading them from disk per batch", len(kept), max_bytes / 2**30)
        return DiskImages([paths[i] for i in kept], size, crop, workers or 2), kept, skipped
    return (torch.cat(blocks) if blocks else torch.empty(0, 3, side, side, dtype=torch.uint8)), kept, skipped


def _decodable(img: torch.Tensor) -> torch.Tensor:
    """The image was decoded (the check pass of DiskImages): keep nothing of it."""
    return torch.empty(0)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] images -> ImageNet-normalised float (the authors' input normalisation)."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
