#!/usr/bin/env python3
"""Train a Deep Image Fingerprint from DATA_DIR/0_real and DATA_DIR/1_fake.

    python train_dif.py DATA_DIR CHECK_DIR [--epochs 100] [--lr 5e-4] [--batch 64] ...

CHECK_DIR receives chk_<epoch>.pt (the authors' format), config.json, calibration.json,
train_files.json, fingerprint.png, fingerprint_fft.png and training.png. The run is written
beside CHECK_DIR and moved into place only when complete: an interrupted run leaves CHECK_DIR as
it was, and a second run into the same CHECK_DIR at the same time is refused.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dif.cli import CompactFormatter, Parser, add_common_arguments, resolve_device, run_main, setup_logging
from dif.choose import TRAINING_DEFAULT, parse_auto
from dif.config import DIFConfig, add_config_arguments, config_from_args


def parse_args(argv: Sequence[str] | None = None):
    p = Parser(description=__doc__.split("\n")[0], formatter_class=CompactFormatter,
               usage="%(prog)s DATA_DIR CHECK_DIR [options]", epilog="Every option: docs/dif.md")
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder with 0_real/ and 1_fake/ images")
    p.add_argument("check_dir", metavar="CHECK_DIR", help="output folder for checkpoints and figures")
    add_common_arguments(p, extractor=f"residual extractor: auto, highpass, wavelet(-dwt), dncnn(-jpeg), ... "
                                      f"(default: {TRAINING_DEFAULT})")
    add_config_arguments(p, DIFConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in CHECK_DIR once the new one is done")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()

    from dif.atomic import RunFolder
    from dif.data import find_labelled
    from dif.methods import get_method
    from dif.robustness import parse_reencode

    cfg = config_from_args(DIFConfig, args, extractor=args.extractor or TRAINING_DEFAULT).validate()
    parse_reencode(cfg.reencode)
    parse_auto(cfg.extractor)  # a bad auto:K:E, before any work
    device = resolve_device(args.device)
    data = find_labelled(args.data_dir)
    ensemble = cfg.extractor.strip().lower().startswith("ensemble")
    method_cls = get_method("dif-ensemble" if ensemble else "dif")
    method = method_cls.build(cfg)
    check_dir = Path(args.check_dir)
    with RunFolder(check_dir, args.overwrite, method_cls.owns_file) as run:
        print(f"Training on up to {cfg.train_size} images per class of {len(data.real)} real + {len(data.fake)} fake "
              f"({cfg.extractor}, crop {cfg.crop}) on {device}; writing {run.tmp}")
        report = method.fit(data.paths, data.labels, device=device, workdir=run.tmp, progress=not args.quiet)
        for note in report["notes"]:
            print(f"note: {note}")
        if report["skipped"]:
            print(f"warning: skipped {report['skipped']} unusable image(s) (see the warnings above)")
        method.save(run.tmp)
        run.commit()
    print(f"Residuals: {report['residual_seconds']:.1f} s; training: {report['train_seconds']:.1f} s "
          f"({report['train_seconds'] / cfg.epochs:.2f} s/epoch)")
    for m in getattr(method, "members", [method]):
        det, cal = m.detector, m.calibration
        print((f"{m.config.extractor}: " if ensemble else "") + f"Centres: real {det.mu_real:.5f} | fake {det.mu_fake:.5f}"
              + (f" (out-of-fold: real {cal['cv']['corr'][0]:.5f} | fake {cal['cv']['corr'][1]:.5f})" if "cv" in cal else ""))
    if ensemble:
        print(f"Saved an ensemble of {len(method.members)} fingerprints (one sub-folder each) in {check_dir}")
    else:
        print(f"Saved {check_dir / f'chk_{method.state.epoch}.pt'} and figures in {check_dir}")
    return 0


def cli() -> int:
    """The installed command's entry point (``[project.scripts]`` in pyproject.toml)."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(cli())
