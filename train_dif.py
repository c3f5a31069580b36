#!/usr/bin/env python3
"""Train a Deep Image Fingerprint from DATA_DIR/0_real and DATA_DIR/1_fake.

    python train_dif.py DATA_DIR CHECK_DIR [--epochs 100] [--lr 5e-4] [--batch 64] ...

CHECK_DIR receives chk_<epoch>.pt (the authors' format), config.json, calibration.json,
train_files.json, fingerprint.png, fingerprint_fft.png and training.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from dif.cli import Parser, resolve_device, run_main, setup_logging
from dif.config import DIFConfig

D = DIFConfig()


def parse_args(argv: Sequence[str] | None = None):
    p = Parser(description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help="folder with 0_real/ and 1_fake/ images")
    p.add_argument("check_dir", help="output folder for checkpoints and figures (created)")
    p.add_argument("--epochs", "--e", type=int, default=D.epochs, help="training epochs")
    p.add_argument("--lr", type=float, default=D.lr, help="AdamW learning rate")
    p.add_argument("--batch", "--bs", type=int, default=D.batch_size, help="batch size")
    p.add_argument("--train-size", "--tr", type=int, default=D.train_size, help="images per class, drawn reproducibly by --seed (all if fewer)")
    p.add_argument("--crop", "--cs", type=int, default=D.crop, help="centre crop size (multiple of 16)")
    p.add_argument("--alpha", "--a", type=float, default=D.alpha, help="residuals scaled by U[alpha, 1] (1 = off)")
    p.add_argument("--boost", "--b", action="store_true", help="add the authors' booster loss")
    p.add_argument("--seed", type=int, default=D.seed, help="seed for the file draw, weights, noise and batches")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")
    p.add_argument("--checkpoint-every", "--f", type=int, default=D.checkpoint_every, help="save chk_<epoch>.pt every F epochs (and the last)")
    p.add_argument("--denoiser", default=None, help="residual extractor: dncnn (the shipped weights), dncnn:PATH, wavelet[:SIGMA], wavelet-dwt[:SIGMA], "
                        "highpass[:SIGMA] or authors:CHK[:MEAN.npy] (default: %s)" % D.extractor)
    p.add_argument("--augment", type=int, nargs="?", const=D.augment, default=D.augment, metavar="N",
                   help="add N randomly perturbed copies of each image (JPEG, resize, blur, shift, rotation); "
                        "0 = the paper's recipe")
    p.add_argument("--reencode", default="", metavar="jpeg:Q|png",
                   help="re-encode every image of both classes first (against format shortcuts); eval repeats it")
    p.add_argument("--calibrate", default="none", choices=["none", "cv"],
                   help="cv: also estimate centres from out-of-fold scores (trains --folds extra fingerprints)")
    p.add_argument("--folds", type=int, default=D.folds, help="folds for --calibrate cv")
    p.add_argument("--max-shift", type=int, default=D.max_shift, help="shift search range of the shift-tolerant score")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoints of an earlier run in CHECK_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    import torch

    from dif import plots
    from dif.checkpoint import checkpoint_path, list_checkpoints, save_checkpoint
    from dif.atomic import write_text_atomic
    from dif.calibration import calibrate, save_calibration
    from dif.data import draw_subset, find_labelled, training_residuals
    from dif.robustness import parse_reencode
    from dif.denoiser import build_extractor
    from dif.detect import Detector
    from dif.errors import DIFError
    from dif.fingerprint import train_fingerprint

    cfg = DIFConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch, train_size=args.train_size,
                    crop=args.crop, alpha=args.alpha, boost=args.boost, seed=args.seed,
                    checkpoint_every=args.checkpoint_every, augment=args.augment, reencode=args.reencode,
                    calibrate=args.calibrate, folds=args.folds, max_shift=args.max_shift).validate()
    parse_reencode(cfg.reencode)
    device = resolve_device(args.device)
    data = find_labelled(args.data_dir)
    check_dir = Path(args.check_dir)
    if check_dir.exists() and not check_dir.is_dir():
        raise DIFError(f"CHECK_DIR exists and is not a folder: {check_dir}")
    old = list_checkpoints(check_dir)
    if old and not args.overwrite:
        raise DIFError(f"{check_dir} already holds {len(old)} checkpoint(s) of an earlier run; "
                       "choose another CHECK_DIR or pass --overwrite")
    extractor = build_extractor(args.denoiser, device)
    cfg.extractor = extractor.spec

    real = draw_subset(data.real, cfg.train_size, cfg.seed)
    fake = draw_subset(data.fake, cfg.train_size, cfg.seed + 1)
    for name, chosen, have in (("real", real, data.real), ("fake", fake, data.fake)):
        if len(have) < cfg.train_size:
            print(f"note: {len(have)} {name} images available (< --train-size {cfg.train_size}); using all of them")
    print(f"Computing residuals of {len(real)} real + {len(fake)} fake images ({extractor.spec}, crop {cfg.crop}) on {device}...")
    t0 = time.perf_counter()
    ts = training_residuals(real + fake, [0] * len(real) + [1] * len(fake), extractor, (cfg.crop, cfg.crop),
                            augment=cfg.augment, reencode=cfg.reencode, seed=cfg.seed, device=device,
                            progress=not args.quiet)
    cache = ts.cache
    t_res = time.perf_counter() - t0
    n_real = int((cache.labels == 0).sum())
    n_fake = int((cache.labels == 1).sum())
    if cache.skipped:
        print(f"warning: skipped {len(cache.skipped)} unusable image(s) (see the warnings above)")
    if n_real == 0 or n_fake == 0:
        raise DIFError(f"no usable {'real' if n_real == 0 else 'fake'} images left (need at least one of each; "
                       f"images must be readable and at least {cfg.crop}x{cfg.crop})")
    del extractor
    if device.type == "cuda":
        torch.cuda.empty_cache()

    check_dir.mkdir(parents=True, exist_ok=True)
    for path in old.values():  # only reached with --overwrite
        path.unlink()
    cfg.save(check_dir)
    write_text_atomic(check_dir / "train_files.json", json.dumps({
        "data_dir": str(Path(args.data_dir).resolve()),
        "real": sorted({str(p) for p, y in zip(cache.paths, cache.labels.tolist()) if y == 0}),
        "fake": sorted({str(p) for p, y in zip(cache.paths, cache.labels.tolist()) if y == 1}),
        "skipped": [{"path": str(p), "reason": r} for p, r in cache.skipped],
    }, indent=1) + "\n")

    def on_epoch_end(state) -> None:
        if state.epoch % cfg.checkpoint_every == 0 or state.epoch == cfg.epochs:
            save_checkpoint(checkpoint_path(check_dir, state.epoch), state, cfg.extractor)

    t1 = time.perf_counter()
    state = train_fingerprint(cache.residuals, cache.labels, cfg, device=device, on_epoch_end=on_epoch_end,
                              progress=not args.quiet)
    t_train = time.perf_counter() - t1
    if cfg.calibrate == "cv":
        print(f"Calibrating: training {cfg.folds} out-of-fold fingerprints...")
    cal = calibrate(state, cfg, cache.residuals, cache.labels, ts.groups, device=device, progress=not args.quiet)
    save_calibration(check_dir, cal)

    det = Detector.from_state(state, cfg.centre_steps)
    plots.save_image_png(state.fingerprint, check_dir / "fingerprint.png", f"DIF fingerprint (epoch {state.epoch})")
    plots.save_spectrum_png(state.fingerprint, check_dir / "fingerprint_fft.png", "Fingerprint spectrum (log |FFT|)")
    plots.save_training_png(state.loss, state.train_real, state.train_fake, check_dir / "training.png",
                            det.mu_real, det.mu_fake)
    print(f"Residuals: {t_res:.1f} s; training: {t_train:.1f} s ({t_train / cfg.epochs:.2f} s/epoch)")
    print(f"Centres: real {det.mu_real:.5f} | fake {det.mu_fake:.5f}"
          + (f" (out-of-fold: real {cal['cv']['corr'][0]:.5f} | fake {cal['cv']['corr'][1]:.5f})" if "cv" in cal else ""))
    print(f"Saved {checkpoint_path(check_dir, state.epoch)} and figures in {check_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
