"""``python -m dif.demo DIR``: a small labelled data set made on this machine, with no download.

Real images are crops of the photos that ship inside this project's dependencies (scikit-learn's
``china.jpg`` and ``flower.jpg``, matplotlib's ``grace_hopper.jpg``). Fake images are crops of the
same photos passed through a small fully convolutional autoencoder (``ImageAutoencoder``: two
stride-2 convolutions down, two ConvTranspose up-samplings back; ``--ups`` changes both) trained
for about a minute on them. Each photo is cut in two halves: train images come from one half,
test images from the other, and the autoencoder sees only the train halves, so no test pixel took
part in training.

Both classes are cropped from the same decoded pixels and written as PNG: neither can be told
apart by its file format. Crops are drawn at two scales (1 and 0.9) with a random flip or rotation,
so the real images are not shifted copies of each other. The same ``--seed`` gives the same files.

    DIR/train/{0_real,1_fake}/*.png   DIR/test/{0_real,1_fake}/*.png
    DIR/generator.pt                  the autoencoder's weights (weights_only), with its settings
    DIR/demo.json                     how the set was made (sources, counts, seed, steps, losses)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .config import opt
from .errors import DIFError, first_line

log = logging.getLogger(__name__)
SCALES = (1.0, 0.9)
OUTPUTS = ("train", "test", "generator.pt", "demo.json")


@dataclass
class DemoConfig:
    """How the demo set is made; each field is also a flag of ``python -m dif.demo``."""

    train: int = opt(10, "images per class in DIR/train", low=2, high=10_000)
    test: int = opt(16, "images per class in DIR/test", low=2, high=10_000)
    size: int = opt(256, "side of every image in pixels (a multiple of 16, at most the smallest half photo "
                         "after --zoom: 300 px at zoom 1)", low=32, high=4096)
    zoom: float = opt(1.0, "resize the bundled photos by this factor (Lanczos) before they are cut, so that "
                           "larger images fit", low=0.25, high=4.0)
    steps: int = opt(800, "autoencoder training steps (about a minute on 2 CPU cores)", low=1, high=1_000_000)
    patch: int = opt(64, "side of the autoencoder's training crops", low=16, high=256)
    ups: int = opt(2, "the autoencoder's stride-2 up-samplings (each doubles the period of its trace)", low=1, high=4)
    seed: int = opt(0, "seed of the crops, the autoencoder and its training", low=0, high=2**32 - 1)

    def validate(self) -> "DemoConfig":
        from .config import validate_fields

        validate_fields(self)
        for name in ("size", "patch"):
            if getattr(self, name) % 16:
                raise DIFError(f"--{name} must be a multiple of 16, got {getattr(self, name)}")
        return self


# ----------------------------------------------------------------------------- sources

def bundled_photos() -> list[tuple[str, Path]]:
    """(name, path) of the three colour photos shipped inside installed dependencies."""
    from .data import package_photos

    found = package_photos()
    if len(found) != 3:
        raise DIFError(f"found {len(found)} of the 3 sample photos of matplotlib and scikit-learn: reinstall them "
                       f"(python3 -m pip install -r requirements.txt)")
    return [(p.stem, p) for p in found]


def halves(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train half, test half) of an H x W x 3 photo, cut across its longer side."""
    h, w = img.shape[:2]
    if w >= h:
        return img[:, : w // 2], img[:, w // 2:]
    return img[: h // 2], img[h // 2:]


def _scaled(part: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    if scale == 1.0:
        return part
    h, w = part.shape[:2]
    im = Image.fromarray(part).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    return np.asarray(im)


def pyramids(parts: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Each part at every scale of ``SCALES``, resized once for all the crops drawn from it."""
    return [[_scaled(p, sc) for sc in SCALES] for p in parts]


def random_crops(levels_of: Sequence[Sequence[np.ndarray]], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` crops (n x size x size x 3, uint8): a random part, scale (among those at least ``size``
    on each side), position and one of the 8 flips / rotations each."""
    pyramids = [[s for s in levels if min(s.shape[:2]) >= size] for levels in levels_of]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        levels = pyramids[rng.integers(len(pyramids))]
        im = levels[rng.integers(len(levels))]
        y = rng.integers(im.shape[0] - size + 1)
        x = rng.integers(im.shape[1] - size + 1)
        c = np.rot90(im[y:y + size, x:x + size], k=int(rng.integers(4)))
        out[i] = c[:, ::-1] if rng.integers(2) else c
    return out


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def generate(net: torch.nn.Module, crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """The autoencoder's output for each crop, quantised to uint8 like any saved image."""
    out = []
    for i in range(0, len(crops), batch):
        y = net(_to_tensor(crops[i:i + batch]))
        out.append((y.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _png_bytes(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")  # no timestamp or text chunk: the same pixels, the same bytes
    return buf.getvalue()


# ----------------------------------------------------------------------------- the set

def make_demo(out: Path, cfg: DemoConfig, progress: bool = False) -> dict:
    """Write the demo set into the (empty, existing) folder ``out``; returns what demo.json holds."""
    from PIL import Image

    from .atomic import save_torch_atomic, write_bytes_atomic, write_text_atomic
    from .generators import train_image_autoencoder

    cfg.validate()
    sources = []
    train_parts, test_parts = [], []
    for name, path in bundled_photos():
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise DIFError(f"cannot read the bundled photo {path} ({first_line(exc)})") from None
        if cfg.zoom != 1.0:
            arr = _scaled(arr, cfg.zoom)
        a, b = halves(arr)
        train_parts.append(a)
        test_parts.append(b)
        sources.append({"name": name, "file": path.name, "size": [arr.shape[1], arr.shape[0]],
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    smallest = min(min(p.shape[:2]) for p in train_parts + test_parts)
    if cfg.size > smallest:
        raise DIFError(f"--size {cfg.size} is larger than the smallest half photo ({smallest} px at --zoom {cfg.zoom:g})")

    train_levels, test_levels = pyramids(train_parts), pyramids(test_parts)
    rng = np.random.default_rng(cfg.seed)
    patches = _to_tensor(random_crops(train_levels, 512, cfg.patch, rng))
    net, losses = train_image_autoencoder(patches, cfg.steps, seed=cfg.seed, progress=progress, ups=cfg.ups)
    log.info("autoencoder: %d steps, L1 %.4f -> %.4f", cfg.steps, losses[0], float(np.mean(losses[-50:])))

    counts = {}
    for split, levels, n in (("train", train_levels, cfg.train), ("test", test_levels, cfg.test)):
        real = random_crops(levels, n, cfg.size, rng)
        fake = generate(net, random_crops(levels, n, cfg.size, rng))
        for cls, images in (("0_real", real), ("1_fake", fake)):
            folder = out / split / cls
            folder.mkdir(parents=True)
            for i, arr in enumerate(images):
                write_bytes_atomic(folder / f"{cls[2:]}_{i:04d}.png", _png_bytes(arr))
        counts[split] = {"real": n, "fake": n}
    save_torch_atomic(out / "generator.pt", {"kind": "dif.generators.ImageAutoencoder", "width": 32, "ups": cfg.ups,
                                             "state_dict": {k: v.clone() for k, v in net.state_dict().items()}})
    info = {"config": asdict(cfg), "sources": sources, "counts": counts, "scales": list(SCALES),
            "split": "train images from one half of each photo (cut across its longer side), test images "
                     "from the other; the autoencoder trained on the train halves only",
            "generator": f"dif.generators.ImageAutoencoder (width 32, {cfg.ups} up-samplings), L1 loss, Adam 1e-3, batch 16",
            "loss_first": round(losses[0], 5), "loss_last50": round(float(np.mean(losses[-50:])), 5)}
    write_text_atomic(out / "demo.json", json.dumps(info, indent=2) + "\n")
    return info


def make_demo_folder(out: str | os.PathLike, cfg: DemoConfig, overwrite: bool = False,
                     progress: bool = False) -> dict:
    """``make_demo`` into a run folder swapped in whole: an existing non-empty ``out`` is refused
    without ``overwrite``, and an interrupted run leaves it as it was."""
    from .atomic import RunFolder

    cfg.validate()
    with RunFolder(Path(out), overwrite, lambda name: name in OUTPUTS, what="DIR") as run:
        info = make_demo(run.tmp, cfg, progress)
        run.commit()
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    import time

    from .cli import DefaultsFormatter, Parser, prog_name, setup_logging
    from .config import add_config_arguments, config_from_args

    p = Parser(prog=prog_name("dif.demo"), description="Make a small labelled demo set (DIR/train, DIR/test, each "
                                                      "with 0_real/ and 1_fake/) from bundled photos, no download.",
               formatter_class=DefaultsFormatter)
    p.add_argument("dir", help="output folder (created; an existing non-empty one needs --overwrite)")
    add_config_arguments(p, DemoConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo set in DIR once the new one is "
                                                            "complete")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    setup_logging()
    cfg = config_from_args(DemoConfig, args)  # make_demo_folder checks it before anything is written
    t0 = time.perf_counter()
    info = make_demo_folder(args.dir, cfg, args.overwrite, progress=not args.quiet)
    c = info["counts"]
    print(f"Wrote {c['train']['real']} + {c['train']['fake']} train and {c['test']['real']} + {c['test']['fake']} test "
          f"images ({cfg.size} px PNG) to {args.dir} in {time.perf_counter() - t0:.0f} s "
          f"(autoencoder L1 {info['loss_first']:.3f} -> {info['loss_last50']:.3f})")
    print(f"Next: python train_dif.py {args.dir}/train CHECK_DIR && python eval_dif.py CHECK_DIR {args.dir}/test")
    return 0


def cli() -> int:
    """The installed command's entry point (``dif-demo``)."""
    from .cli import run_main

    return run_main(main)


if __name__ == "__main__":
    import sys

    sys.exit(cli())
