#!/usr/bin/env python3
"""The gray image experiment: train the DIF U-Net to output a flat 0.5 gray image.

    python blank_experiment.py [--size 128 128] [--epochs 1000] [--lr 5e-5] [--output-dir out/blank]

The output looks gray, but its spectrum shows the periodic artifacts of the network itself.
Saves gray_image.png (the output), gray_fft.png (its spectrum), gray_experiment.png (both,
with titles), history.npz (snapshots every 100 steps) and loss.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from dif.cli import DefaultsFormatter, Parser, add_common_arguments, resolve_device, run_main, setup_logging


def parse_args(argv: Sequence[str] | None = None):
    p = Parser(description=__doc__.split("\n")[0], formatter_class=DefaultsFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"), help="image size (multiples of 16)")
    p.add_argument("--epochs", "--steps", type=int, default=1000, help="training steps")
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate")
    p.add_argument("--snapshot-every", type=int, default=100, help="keep the output every N steps")
    p.add_argument("--output-dir", "--output_dir", type=Path, default=Path("out/blank"), help="where to save")
    add_common_arguments(p, seed=True)
    args = p.parse_args(argv)
    h, w = args.size
    if h < 16 or w < 16 or h % 16 or w % 16:
        p.error(f"--size must be two multiples of 16 (got {h} {w})")
    if args.epochs < 1 or args.snapshot_every < 1:
        p.error("--epochs and --snapshot-every must be >= 1")
    if not (0 < args.lr <= 10):
        p.error("--lr must be in (0, 10] (a finite number)")
    if h > 4096 or w > 4096 or args.epochs > 10**6:
        p.error("--size is at most 4096 4096 and --epochs at most 1000000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    import numpy as np
    from PIL import Image

    from dif import plots
    from dif.atomic import write_atomic, write_text_atomic
    from dif.blank import gray_experiment
    from dif.atomic import check_output_dir
    from dif.spectrum import spectrum_image

    out = args.output_dir
    check_output_dir(out, "--output-dir")  # before the minutes of training
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    res = gray_experiment(tuple(args.size), args.epochs, args.lr, args.seed, args.snapshot_every,
                          device=device, progress=not args.quiet)
    dt = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    img8 = (np.clip(res.image, 0, 1) * 255).round().astype(np.uint8)
    write_atomic(out / "gray_image.png", lambda p: Image.fromarray(img8).save(p, format="PNG"))
    spec8 = (spectrum_image(res.image) * 255).round().astype(np.uint8)
    write_atomic(out / "gray_fft.png", lambda p: Image.fromarray(spec8).save(p, format="PNG"))
    plots.save_gray_experiment_png(res.image, out / "gray_experiment.png",
                                   f"Gray image experiment ({args.epochs} steps, lr {args.lr:g})")
    write_atomic(out / "history.npz", lambda p: np.savez_compressed(
        p.open("wb"), steps=np.array(sorted(res.history)), images=np.stack([res.history[k] for k in sorted(res.history)])))
    write_text_atomic(out / "loss.json", json.dumps({"mse": res.loss}) + "\n")
    print(f"{args.epochs} steps in {dt:.1f} s; final MSE {res.loss[-1]:.2e}; output mean {res.image.mean():.4f}, "
          f"std {res.image.std():.4f}")
    print(f"Saved gray_image.png, gray_fft.png, gray_experiment.png, history.npz in {out}")
    return 0


def cli() -> int:
    """The installed command's entry point (``[project.scripts]`` in pyproject.toml)."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(cli())
