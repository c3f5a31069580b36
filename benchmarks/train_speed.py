#!/usr/bin/env python3
"""Seconds per epoch of DIF training on CPU, residuals cached (computed once).

Workload (the issue's): 20 images (10 real + 10 fake, CNNDetection CRN 356x356 from
../shared/data, or synthetic), crop 256, batch 64, the paper's U-Net, 100 epochs, with the
default augmentation (2 perturbed copies per image; --augment 0 for the paper's recipe).
Also times what the authors' loop pays per epoch by re-running a DnCNN-17 on every batch.
``--denoiser auto[:K[:E]]`` (train_dif.py's default) or ``auto:meandiff`` times the whole fit
instead: the choice among the candidates, then the chosen extractor's fingerprint.

    python benchmarks/train_speed.py [--epochs 100] [--images 10] [--denoiser auto]
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _common import workload_dir


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--epochs", type=int_in(1, 100_000), default=100)
    p.add_argument("--images", type=int_in(1, 100_000), default=10, help="images per class")
    p.add_argument("--crop", type=int_in(16, 356), default=256, help="centre crop, a multiple of 16 (images are 356 px)")
    p.add_argument("--denoiser", default=None, help="residual extractor, or auto[:K] (default: the package default, dncnn)")
    p.add_argument("--augment", type=int_in(0, 100), default=None, help="perturbed copies per image (default: the config's)")
    p.add_argument("--train-precision", choices=("fp32", "bf16"), default="fp32",
                   help="our U-Net's arithmetic (the authors' loop is always estimated with an fp32 U-Net)")
    p.add_argument("--residual-precision", choices=("fp32", "folded"), default="folded",
                   help="our training residuals' DnCNN (train_dif.py's default: folded; the authors' loop is always "
                        "estimated with the unfolded fp32 DnCNN)")
    args = p.parse_args(argv)
    from dif.config import DIFConfig

    DIFConfig(epochs=args.epochs, crop=args.crop).validate()  # the crop grid, before any work

    import torch

    from dif.config import DIFConfig
    from dif.data import compute_residuals, find_labelled, training_residuals
    from dif.extractors import DnCNN, DnCNNExtractor, build_extractor
    from dif.fingerprint import train_fingerprint

    from dif.choose import parse_auto

    if parse_auto(args.denoiser) is not None:
        return time_auto(args)
    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images))
        crop = (args.crop, args.crop)
        cfg = DIFConfig(epochs=args.epochs, crop=args.crop, train_precision=args.train_precision,
                        residual_precision=args.residual_precision)
        ext = build_extractor(args.denoiser, precision=cfg.residual_precision)
        if args.augment is not None:
            cfg.augment = args.augment
        t0 = time.perf_counter()
        cache = training_residuals(ds.paths, ds.labels, ext, crop, augment=cfg.augment, seed=cfg.seed,
                                   kinds=cfg.augment_kinds).cache
        t_res = time.perf_counter() - t0
        # What the authors' loop spends per epoch: the DnCNN-17 forward on every image, every batch.
        dncnn = DnCNNExtractor(DnCNN())
        t0 = time.perf_counter()
        compute_residuals(ds.paths, ds.labels, dncnn, crop)
        t_dncnn = time.perf_counter() - t0

    t0 = time.perf_counter()
    state = train_fingerprint(cache.residuals, cache.labels, cfg)
    t_train = time.perf_counter() - t0
    t_epoch_fp32 = t_train / args.epochs
    if args.train_precision != "fp32":  # their loop's U-Net runs in fp32: time a few of its epochs
        short = min(args.epochs, 5)
        t0 = time.perf_counter()
        train_fingerprint(cache.residuals, cache.labels, DIFConfig(**dict(cfg.to_dict(), epochs=short,
                                                                          train_precision="fp32")))
        t_epoch_fp32 = (time.perf_counter() - t0) / short
    res = {
        "images": len(ds.paths), "residuals": len(cache), "augment": cfg.augment, "crop": args.crop, "epochs": args.epochs, "steps": len(state.loss),
        "threads": torch.get_num_threads(), "extractor": ext.spec, "train_precision": args.train_precision,
        "residual_precision": args.residual_precision, "residuals_s": round(t_res, 2), "train_s": round(t_train, 2),
        "s_per_epoch": round(t_train / args.epochs, 3), "total_s": round(t_res + t_train, 2),
        "dncnn17_pass_s": round(t_dncnn, 2),
        "fp32_s_per_epoch": round(t_epoch_fp32, 3),
        "authors_style_estimate_s": round(args.epochs * (t_dncnn + t_epoch_fp32), 1),
    }
    print(json.dumps(res, indent=2))
    return 0


def time_auto(args) -> int:
    """The whole ``auto`` fit: every candidate's residuals and fold fingerprints, then the final one."""
    import torch

    from dif.config import DIFConfig
    from dif.data import find_labelled
    from dif.methods.dif import DIFMethod

    cfg = DIFConfig(epochs=args.epochs, crop=args.crop, extractor=args.denoiser, checkpoint_every=args.epochs,
                    train_precision=args.train_precision, residual_precision=args.residual_precision)
    if args.augment is not None:
        cfg.augment = args.augment
    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images))
        t0 = time.perf_counter()
        report = DIFMethod.build(cfg).fit(ds.paths, ds.labels, device=torch.device("cpu"))
        total = time.perf_counter() - t0
    choice = report["extractor_choice"]
    res = {"images": len(ds.paths), "augment": cfg.augment, "crop": args.crop, "epochs": args.epochs,
           "threads": torch.get_num_threads(), "extractor": args.denoiser, "train_precision": args.train_precision,
           "residual_precision": args.residual_precision, "chosen": choice["chosen"],
           "candidates": choice["candidates"], "choice_and_residuals_s": round(report["residual_seconds"], 2),
           "final_train_s": round(report["train_seconds"], 2), "total_s": round(total, 2)}
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    import sys

    from dif.cli import run_main

    sys.exit(run_main(main))
