#!/usr/bin/env python3
"""Evaluate a DIF fingerprint on images.

    python eval_dif.py CHECK_DIR DATA_DIR [EPOCH] [--json PATH] [--csv PATH] [--plots DIR]
    python eval_dif.py CHECK_DIR DATA_DIR --perturb jpeg90,shift1      (or --perturb all)
    python eval_dif.py FINGERPRINTS_ROOT DATA_ROOT --cross             (lineage matrix)

DATA_DIR with 0_real/ and 1_fake/: accuracy per class, AP and ROC AUC. A folder of unlabelled
images, or a single image: the score and verdict (real / generated) per image.
CHECK_DIR may be one of ours or one of the authors' released fingerprint folders.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from dif.cli import Parser, resolve_device, run_main, setup_logging

METRIC_KEYS = ["accuracy", "real_accuracy", "fake_accuracy", "ap", "auc", "n_real", "n_fake", "threshold"]


def parse_args(argv: Sequence[str] | None = None):
    p = Parser(description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("check_dir", help="fingerprint folder (chk_<epoch>.pt files), one chk_<epoch>.pt file, "
                                     "or with --cross a folder of fingerprint folders")
    p.add_argument("data_dir", help="folder with 0_real/ and 1_fake/, a folder of images, one image, "
                                    "or with --cross a folder of generator folders")
    p.add_argument("epoch_pos", nargs="?", type=int, default=None, metavar="EPOCH",
                   help="checkpoint epoch (default: the latest)")
    p.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (same as the positional EPOCH)")
    p.add_argument("--batch", type=int, default=8, help="images per residual-extraction batch")
    p.add_argument("--denoiser", default=None,
                   help="residual extractor (default: the one recorded with the fingerprint, else the package default)")
    p.add_argument("--allow-mixed-extractor", action="store_true",
                   help="score a fingerprint with a --denoiser other than the one it was made with")
    p.add_argument("--score", default="corr", choices=["corr", "shift"],
                   help="corr: the paper's correlation; shift: best correlation over circular shifts (FFT)")
    p.add_argument("--max-shift", type=int, default=None, help="shift search range for --score shift (default: as trained, 8)")
    p.add_argument("--centres", default="auto", choices=["auto", "paper", "train", "cv"],
                   help="decision centres: paper (last training steps), train (final fingerprint on its training "
                        "images), cv (out-of-fold, from train_dif.py --calibrate cv); auto: paper for corr, cv or train for shift")
    p.add_argument("--perturb", default=None, metavar="NAMES",
                   help="robustness suite: comma-separated perturbations (jpeg95,jpeg90,jpeg75,jpeg50,resize0.5,resize2,"
                        "blur0.5,blur1,shift1,shift4,rot5,crop) or 'all'")
    p.add_argument("--reencode", default=None, metavar="jpeg:Q|png|none",
                   help="re-encode every image first (default: what the fingerprint was trained with)")
    p.add_argument("--cross", action="store_true", help="cross-detection matrix of every fingerprint on every generator")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    p.add_argument("--csv", type=Path, default=None, help="write one row per image (per perturbation / pair with --perturb / --cross)")
    p.add_argument("--plots", type=Path, default=None, help="folder for figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.epoch is not None and args.epoch_pos is not None and args.epoch != args.epoch_pos:
        p.error(f"EPOCH {args.epoch_pos} and --epoch {args.epoch} disagree")
    args.epoch = args.epoch if args.epoch is not None else args.epoch_pos
    if args.batch < 1:
        p.error("--batch must be >= 1")
    if args.max_shift is not None and args.max_shift < 0:
        p.error("--max-shift must be >= 0")
    if args.cross and args.epoch is not None:
        p.error("--cross uses the latest checkpoint of each fingerprint; drop EPOCH")
    return args


def _fmt(v) -> str:
    return "  -  " if v is None or v != v else f"{v:.3f}"


def _detector(loaded, args):
    """Fingerprint -> Detector with the chosen score, shift range and centres."""
    from dif.calibration import choose_centres, load_calibration
    from dif.detect import Detector

    det = Detector.from_state(loaded.state, loaded.config.centre_steps if loaded.config else 20)
    cal = load_calibration(loaded.path.parent)
    trained = cal.get("max_shift", loaded.config.max_shift if loaded.config else det.max_shift)
    det.max_shift = int(args.max_shift if args.max_shift is not None else trained)
    det, method = choose_centres(det, cal, args.score, args.centres)
    return det, method


def _extractor_spec(loaded, args, warned: set) -> str:
    """The extractor to score ``loaded`` with: its own unless --denoiser names another, which is
    refused (mixed residuals make meaningless scores) unless --allow-mixed-extractor."""
    from dif.denoiser import DEFAULT_EXTRACTOR, same_extractor
    from dif.errors import DIFError

    if args.denoiser:
        if loaded.extractor and not same_extractor(loaded.extractor, args.denoiser):
            if not args.allow_mixed_extractor:
                raise DIFError(f"{loaded.path} was made with the {loaded.extractor} extractor; scoring it with "
                               f"{args.denoiser} mixes residual extractors (pass --allow-mixed-extractor to do it anyway)")
            if "mix" not in warned:
                print(f"warning: {loaded.path} was made with {loaded.extractor}, scoring with {args.denoiser} "
                      f"(--allow-mixed-extractor)")
                warned.add("mix")
        return args.denoiser
    if loaded.extractor:
        return loaded.extractor
    if "none" not in warned:
        print(f"warning: {loaded.path} records no residual extractor (the authors' files do not); "
              f"scoring with {DEFAULT_EXTRACTOR}")
        warned.add("none")
    return DEFAULT_EXTRACTOR


def _reencode(loaded, args):
    from dif.robustness import parse_reencode

    spec = args.reencode
    if spec is None:
        spec = loaded.config.reencode if loaded.config else ""
    return parse_reencode(None if spec in ("", "none") else spec), (spec if spec not in ("", "none") else "")


def run_cross(args, device) -> int:
    from dif import plots
    from dif.atomic import write_csv_atomic, write_text_atomic
    from dif.errors import DIFError
    from dif.lineage import cross_detection, fingerprint_similarity, find_generators, load_fingerprints
    from dif.robustness import compose, get_perturbation, parse_perturbations

    fps = load_fingerprints(args.check_dir)
    gens = find_generators(args.data_dir)
    warned: set = set()
    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    results = {}
    detectors = {n: _detector(fp, args)[0] for n, fp in fps.items()}
    reencodes = {name: fn for fn, name in (_reencode(fp, args) for fp in fps.values())}
    if len(reencodes) > 1:
        raise DIFError(f"the fingerprints were trained with different --reencode settings {sorted(reencodes)}; "
                       "pass --reencode to choose one")
    base = next(iter(reencodes.values()))
    for cond in conditions:
        pert = None if cond == "clean" else get_perturbation(cond)
        res = cross_detection(fps, gens, lambda n, fp: detectors[n], lambda n, fp: _extractor_spec(fp, args, warned),
                              device=device, transform=compose(base, pert), batch=args.batch,
                              progress=not args.quiet)
        results[cond] = res
        print(f"\n[{cond}] accuracy (rows: fingerprints, columns: generators; score {args.score})")
        width = max(len(n) for n in res.fingerprints) + 2
        print(" " * width + " ".join(f"{g[:9]:>9}" for g in res.generators))
        for i, n in enumerate(res.fingerprints):
            print(f"{n:<{width}}" + " ".join(f"{_fmt(v):>9}" for v in res.accuracy[i]))
        print(f"[{cond}] ROC AUC")
        for i, n in enumerate(res.fingerprints):
            print(f"{n:<{width}}" + " ".join(f"{_fmt(v):>9}" for v in res.auc[i]))
    names, sim = fingerprint_similarity({n: fp.fingerprint for n, fp in fps.items()})
    print("\nfingerprint similarity (peak |NCC| over circular shifts)")
    width = max(len(n) for n in names) + 2
    for i, n in enumerate(names):
        print(f"{n:<{width}}" + " ".join(f"{v:9.3f}" for v in sim[i]))
    extractors = next(iter(results.values())).extractors
    if args.json:
        payload = {"score": args.score, "extractors": extractors, "similarity": {"names": names, "matrix": sim.tolist()}}
        payload.update({c: r.to_json() for c, r in results.items()})
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    if args.csv:
        rows = [[c, r["fingerprint"], r["generator"], r["extractor"]] + [r[k] for k in METRIC_KEYS]
                for c, res in results.items() for r in res.rows]
        write_csv_atomic(args.csv, ["perturbation", "fingerprint", "generator", "extractor"] + METRIC_KEYS, rows)
    if args.plots:
        if args.plots.exists() and not args.plots.is_dir():
            raise DIFError(f"--plots must be a folder: {args.plots}")
        for c, res in results.items():
            suffix = "" if c == "clean" else f"_{c}"
            plots.save_heatmap_png(res.accuracy, res.fingerprints, res.generators, args.plots / f"cross_accuracy{suffix}.png",
                                   f"Cross-detection accuracy ({c}, {args.score})", "images of generator", "fingerprint of")
            plots.save_heatmap_png(res.auc, res.fingerprints, res.generators, args.plots / f"cross_auc{suffix}.png",
                                   f"Cross-detection ROC AUC ({c}, {args.score})", "images of generator", "fingerprint of")
        plots.save_heatmap_png(sim, names, names, args.plots / "similarity.png",
                               "Fingerprint similarity (peak |NCC| over shifts)", "fingerprint", "fingerprint",
                               vmin=0.0, vmax=float(max(0.05, np.nanmax(sim[~np.eye(len(names), dtype=bool)]) if len(names) > 1 else 1.0)),
                               fmt="{:.3f}")
        plots.save_fingerprint_panel_png({n: fp.fingerprint for n, fp in fps.items()}, args.plots / "fingerprints.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()

    from dif import plots
    from dif.atomic import write_csv_atomic, write_text_atomic
    from dif.checkpoint import load_fingerprint_dir
    from dif.data import compute_residuals, find_labelled, is_image_file, is_labelled_dir, list_images
    from dif.denoiser import build_extractor
    from dif.detect import detection_metrics
    from dif.errors import DIFError
    from dif.robustness import compose, get_perturbation, parse_perturbations

    device = resolve_device(args.device)
    if args.cross:
        return run_cross(args, device)
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
    perturbations = parse_perturbations(args.perturb) if args.perturb else []
    if perturbations and not labelled:
        raise DIFError("--perturb needs a labelled DATA_DIR (0_real/ and 1_fake/)")

    warned: set = set()
    extractor = build_extractor(_extractor_spec(loaded, args, warned), device)
    det, method = _detector(loaded, args)
    base, base_name = _reencode(loaded, args)
    print(f"Fingerprint {loaded.path} | extractor {extractor.spec} | score {det.score} | centres {method}: "
          f"real {det.mu_real:.5f}, fake {det.mu_fake:.5f}" + (f" | re-encoded {base_name}" if base_name else ""))

    conditions = (["clean"] + [p for p in perturbations if p != "clean"]) if perturbations else ["clean"]
    table = {}
    for cond in conditions:
        pert = None if cond == "clean" else get_perturbation(cond)
        cache = compute_residuals(paths, labels, extractor, det.crop, batch_size=args.batch, device=device,
                                  transform=compose(base, pert), progress=not args.quiet,
                                  desc="Scoring" if cond == "clean" else cond, allow_smaller=pert is not None)
        if cache.skipped:
            print(f"warning: skipped {len(cache.skipped)} unusable image(s) (see the warnings above)")
        if len(cache) == 0:
            raise DIFError(f"no usable images (readable and at least {det.crop[1]}x{det.crop[0]})")
        corr = det.correlate(cache.residuals)
        y = cache.labels.numpy()
        table[cond] = (cache, corr, y)
        if labelled and {int(v) for v in y} != {0, 1}:
            raise DIFError("no usable " + ("real" if 0 not in set(y.tolist()) else "fake") + " images left to evaluate")

    if not labelled:
        cache, corr, _ = table["clean"]
        pred = det.predict(corr)
        for p, c, k in zip(cache.paths, corr, pred):
            print(f"{p}\tcorr {c:+.5f}\t{'generated' if k == 1 else 'real'}")
        result = {"n_images": len(cache), "n_generated": int(pred.sum()), "threshold": det.threshold,
                  "mu_real": det.mu_real, "mu_fake": det.mu_fake, "skipped": len(cache.skipped)}
        results = {"clean": result}
    else:
        results = {}
        for cond, (cache, corr, y) in table.items():
            m = detection_metrics(corr, y, det)
            m["skipped"] = len(cache.skipped)
            results[cond] = m
        if not perturbations:
            m = results["clean"]
            print(f"Real Acc. {100 * m['real_accuracy']:.1f}% | Fake Acc. {100 * m['fake_accuracy']:.1f}% "
                  f"---> Acc. {100 * m['accuracy']:.1f}%")
            print(f"AP {m['ap']:.3f} | AUC {m['auc']:.3f} | n_real {m['n_real']} | n_fake {m['n_fake']}")
        else:
            print(f"{'perturbation':<13}{'acc':>7}{'real':>7}{'fake':>7}{'AP':>7}{'AUC':>7}")
            for cond, m in results.items():
                print(f"{cond:<13}{_fmt(m['accuracy']):>7}{_fmt(m['real_accuracy']):>7}{_fmt(m['fake_accuracy']):>7}"
                      f"{_fmt(m['ap']):>7}{_fmt(m['auc']):>7}")

    meta = dict(checkpoint=str(loaded.path), extractor=extractor.spec, data=str(data), score=det.score,
                centres=method, reencode=base_name)
    if args.json:
        if len(perturbations) == 1:  # a single perturbation: the same keys as a clean run
            payload = dict(results[perturbations[0]], perturbation=perturbations[0], **meta)
        elif perturbations:
            payload = dict(meta, perturbations=results)
        else:
            payload = dict(results["clean"], **meta)
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    if args.csv:
        if perturbations:
            write_csv_atomic(args.csv, ["perturbation"] + METRIC_KEYS,
                       [[c] + [m[k] for k in METRIC_KEYS] for c, m in results.items()])
        else:
            cache, corr, y = table["clean"]
            pred = det.predict(corr)
            write_csv_atomic(args.csv, ["path", "label", "correlation", "prediction"],
                       [[str(p), "" if lab < 0 else int(lab), f"{c:.8f}", "fake" if k == 1 else "real"]
                        for p, lab, c, k in zip(cache.paths, y, corr, pred)])
    if args.plots:
        if args.plots.exists() and not args.plots.is_dir():
            raise DIFError(f"--plots must be a folder: {args.plots}")
        cache, corr, y = table["clean"]
        plots.save_histogram_png(corr, y, det.mu_real, det.mu_fake, args.plots / "histogram.png",
                                 title=f"{det.score} score with {loaded.path.parent.name}/{loaded.path.name}")
        if labelled:
            plots.save_roc_png(det.oriented(corr), y, args.plots / "roc.png", title=f"ROC on {data.name}")
        if perturbations:
            names = list(results)
            plots.save_robustness_png(names, [results[n]["accuracy"] for n in names], [results[n]["auc"] for n in names],
                                      args.plots / "robustness.png", title=f"Robustness of {loaded.path.parent.name} "
                                      f"on {data.name} ({det.score}, {method} centres)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
