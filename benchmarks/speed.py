#!/usr/bin/env python3
"""Speed on the CPU: DIF training, DIF evaluation, DeepFeatureX training.

    python benchmarks/speed.py train [--epochs 100] [--images 10] [--extractor dncnn] [--augment 2]
    python benchmarks/speed.py eval [--images 10] [--crop 256] [--eval-batch 8]
    python benchmarks/speed.py deepfeaturex [--epochs 10] [--images 40]
    python benchmarks/speed.py embed [--photos DIR]

Workloads: CNNDetection images of ../shared/data (synthetic ones of the same size without it).
train: seconds per epoch with the residuals cached, and the authors' loop's estimate (a DnCNN-17
on every batch); an auto spec times the whole fit. eval: images per second of each extractor's
forward pass and of the whole evaluation path. deepfeaturex: decoding against training time.
embed: photos per second of the artificial fingerprints' embed and detect at the photos' own size.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="DIF training: seconds per epoch, residuals cached")
    t.add_argument("--epochs", type=int_in(1, 100_000), default=100)
    t.add_argument("--images", type=int_in(1, 100_000), default=10, help="images per class")
    t.add_argument("--crop", type=int_in(16, 356), default=256, help="a multiple of 16 (the images are 356 px)")
    t.add_argument("--extractor", default="dncnn", help="residual extractor, or an auto spec (times the whole fit)")
    t.add_argument("--augment", type=int_in(0, 100), default=None, help="perturbed copies (default: the config's)")
    t.add_argument("--train-precision", choices=("fp32", "bf16"), default="fp32")
    t.add_argument("--extractor-precision", choices=("fp32", "folded"), default="folded")
    e = sub.add_parser("eval", help="DIF evaluation: images per second per extractor")
    e.add_argument("--images", type=int_in(1, 100_000), default=10, help="images per class")
    e.add_argument("--crop", type=int_in(16, 356), default=256)
    e.add_argument("--eval-batch", dest="batch", type=int_in(1, 1024), default=8)
    d = sub.add_parser("deepfeaturex", help="DeepFeatureX training (resnet18 from scratch)")
    d.add_argument("--epochs", type=int_in(1, 1000), default=10)
    d.add_argument("--images", type=int_in(2, 10_000), default=40, help="images per class")
    d.add_argument("--size", type=int_in(32, 1024), default=256)
    m = sub.add_parser("embed", help="artificial fingerprints: embed and detect, photos per second")
    m.add_argument("--photos", type=Path, default=None, help="folder of photos (default: ../shared/data/faces/0_real)")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments import speed

    return {"train": speed.run_train, "eval": speed.run_eval, "deepfeaturex": speed.run_deepfeaturex,
            "embed": speed.run_embed}[args.command](args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
