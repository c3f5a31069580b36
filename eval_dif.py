#!/usr/bin/env python3
"""Evaluate a DIF fingerprint on images.

    python eval_dif.py CHECK_DIR DATA_DIR [EPOCH] [--json PATH] [--csv PATH] [--plots DIR]

DATA_DIR with 0_real/ and 1_fake/: accuracy per class, AP and ROC AUC. A folder of unlabelled
images, or a single image: the correlation and verdict (real / generated) per image.
CHECK_DIR may be one of ours or one of the authors' released fingerprint folders.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Sequence

from dif.cli import Parser, resolve_device, run_main, setup_logging


def parse_args(argv: Sequence[str] | None = None):
    p = Parser(description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("check_dir", help="fingerprint folder (chk_<epoch>.pt files) or one chk_<epoch>.pt file")
    p.add_argument("data_dir", help="folder with 0_real/ and 1_fake/, a folder of images, or one image")
    p.add_argument("epoch_pos", nargs="?", type=int, default=None, metavar="EPOCH",
                   help="checkpoint epoch (default: the latest)")
    p.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (same as the positional EPOCH)")
    p.add_argument("--batch", type=int, default=8, help="images per residual-extraction batch")
    p.add_argument("--denoiser", default=None,
                   help="residual extractor (default: the one recorded in the checkpoint, else the package default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    p.add_argument("--csv", type=Path, default=None, help="write one row per image")
    p.add_argument("--plots", type=Path, default=None, help="folder for the histogram and ROC figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.epoch is not None and args.epoch_pos is not None and args.epoch != args.epoch_pos:
        p.error(f"EPOCH {args.epoch_pos} and --epoch {args.epoch} disagree")
    args.epoch = args.epoch if args.epoch is not None else args.epoch_pos
    if args.batch < 1:
        p.error("--batch must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from dif import plots
    from dif.atomic import write_atomic, write_text_atomic
    from dif.checkpoint import load_fingerprint_dir
    from dif.data import compute_residuals, find_labelled, is_image_file, is_labelled_dir, list_images
    from dif.denoiser import DEFAULT_EXTRACTOR, build_extractor
    from dif.detect import Detector, detection_metrics
    from dif.errors import DIFError

    device = resolve_device(args.device)
    loaded = load_fingerprint_dir(args.check_dir, args.epoch)
    data = Path(args.data_dir)
    if not data.exists():
        raise DIFError(f"data not found: {data}")
    labelled = data.is_dir() and is_labelled_dir(data)
    if labelled:
        ds = find_labelled(data)
        paths, labels = ds.paths, ds.labels
    elif data.is_dir():
        paths = list_images(data)
        if not paths:
            raise DIFError(f"{data} holds no images and no 0_real/ 1_fake/ folders")
        labels = [-1] * len(paths)
    elif is_image_file(data):
        paths, labels = [data], [-1]
    else:
        raise DIFError(f"not an image file: {data}")

    spec = args.denoiser or loaded.extractor
    if spec is None:
        spec = DEFAULT_EXTRACTOR
        print(f"warning: {loaded.path} records no residual extractor (the authors' files do not); "
              f"scoring with {spec}")
    extractor = build_extractor(spec, device)
    if args.denoiser and loaded.extractor and extractor.spec != loaded.extractor:
        print(f"warning: the fingerprint was made with {loaded.extractor}, scoring with {extractor.spec}")
    det = Detector.from_state(loaded.state, loaded.config.centre_steps if loaded.config else 20)

    cache = compute_residuals(paths, labels, extractor, det.crop, batch_size=args.batch, device=device,
                              progress=not args.quiet, desc="Scoring")
    if cache.skipped:
        print(f"warning: skipped {len(cache.skipped)} unusable image(s) (see the warnings above)")
    if len(cache) == 0:
        raise DIFError(f"no usable images (readable and at least {det.crop[1]}x{det.crop[0]})")
    corr = det.correlate(cache.residuals)
    pred = det.predict(corr)
    y = cache.labels.numpy()

    print(f"Fingerprint {loaded.path} | extractor {extractor.spec} | "
          f"centres real {det.mu_real:.5f}, fake {det.mu_fake:.5f}")
    result = None
    if labelled:
        present = {int(v) for v in y}
        if present != {0, 1}:
            raise DIFError("no usable " + ("real" if 0 not in present else "fake") + " images left to evaluate")
        result = detection_metrics(corr, y, det)
        result["skipped"] = len(cache.skipped)
        print(f"Real Acc. {100 * result['real_accuracy']:.1f}% | Fake Acc. {100 * result['fake_accuracy']:.1f}% "
              f"---> Acc. {100 * result['accuracy']:.1f}%")
        print(f"AP {result['ap']:.3f} | AUC {result['auc']:.3f} | n_real {result['n_real']} | n_fake {result['n_fake']}")
    else:
        for p, c, k in zip(cache.paths, corr, pred):
            print(f"{p}\tcorr {c:+.5f}\t{'generated' if k == 1 else 'real'}")
        result = {"n_images": len(cache), "n_generated": int(pred.sum()), "threshold": det.threshold,
                  "mu_real": det.mu_real, "mu_fake": det.mu_fake, "skipped": len(cache.skipped)}

    if args.json:
        payload = dict(result, checkpoint=str(loaded.path), extractor=extractor.spec, data=str(data))
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "label", "correlation", "prediction"])
        for p, lab, c, k in zip(cache.paths, y, corr, pred):
            w.writerow([str(p), "" if lab < 0 else int(lab), f"{c:.8f}", "fake" if k == 1 else "real"])
        write_text_atomic(args.csv, buf.getvalue())
    if args.plots:
        if args.plots.exists() and not args.plots.is_dir():
            raise DIFError(f"--plots must be a folder: {args.plots}")
        plots.save_histogram_png(corr, y, det.mu_real, det.mu_fake, args.plots / "histogram.png",
                                 title=f"Correlation with {loaded.path.parent.name}/{loaded.path.name}")
        if labelled:
            plots.save_roc_png(det.oriented(corr), y, args.plots / "roc.png", title=f"ROC on {data.name}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
