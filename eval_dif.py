#!/usr/bin/env python3
"""Evaluate a trained detector (a DIF fingerprint, or any registered method) on images.

    python eval_dif.py CHECK_DIR DATA_DIR [EPOCH] [--json PATH] [--csv PATH] [--plots DIR]
    python eval_dif.py CHECK_DIR DATA_DIR --perturb jpeg90,shift1      (or --perturb all)
    python eval_dif.py FINGERPRINTS_ROOT DATA_ROOT --cross             (lineage matrix)

DATA_DIR with 0_real/ and 1_fake/: accuracy per class, AP and ROC AUC. A folder of unlabelled
images, or a single image: the score and verdict (real / generated) per image.
CHECK_DIR may be one of ours (its config.json names the method) or one of the authors' released
fingerprint folders. Images are streamed: memory does not grow with their number.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from dif.cli import CompactFormatter, Parser, add_common_arguments, int_in, resolve_device, run_main, setup_logging

METRIC_KEYS = ["accuracy", "real_accuracy", "fake_accuracy", "ap", "auc", "n_real", "n_fake", "threshold"]


def parse_args(argv: Sequence[str] | None = None):
    from dif.methods import get_method, method_names

    p = Parser(description=__doc__.split("\n")[0], formatter_class=CompactFormatter,
               usage="%(prog)s CHECK_DIR DATA_DIR [EPOCH] [options]", epilog="Every option: docs/evaluation.md")
    p.add_argument("check_dir", metavar="CHECK_DIR", help="checkpoint folder or file (--cross: a folder of them)")
    p.add_argument("data_dir", metavar="DATA_DIR",
                   help="0_real/ + 1_fake/, a folder of images, one image (--cross: generator folders)")
    p.add_argument("epoch_pos", nargs="?", type=int_in(0), default=None, metavar="EPOCH",
                   help="checkpoint epoch (default: the latest)")
    p.add_argument("--epoch", type=int_in(0), default=None, help=argparse.SUPPRESS)  # the positional's long form
    add_common_arguments(p, workers=True, eval_batch=8)
    p.add_argument("--perturb", default=None, metavar="NAMES",
                   help="robustness suite: jpeg90,resize0.5,crop,... or all or dfx (docs/robustness.md)")
    p.add_argument("--cross", action="store_true", help="cross-detection matrix of every checkpoint on every generator")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write one row per image (and condition)")
    p.add_argument("--plots", type=Path, default=None, metavar="DIR", help="folder for figures")
    p.add_argument("--resume", type=Path, default=None, metavar="FILE",
                   help="keep per-image scores here; a rerun continues where it stopped")
    for name in method_names():
        get_method(name).add_eval_arguments(p)
    args = p.parse_args(argv)
    if args.epoch is not None and args.epoch_pos is not None and args.epoch != args.epoch_pos:
        p.error(f"EPOCH {args.epoch_pos} and --epoch {args.epoch} disagree")
    args.epoch = args.epoch if args.epoch is not None else args.epoch_pos
    if args.cross and args.epoch is not None:
        p.error("--cross uses the latest checkpoint of each fingerprint; drop EPOCH")
    return args


def _fmt(v) -> str:
    return "  -  " if v is None or v != v else f"{v:.3f}"


def _check_outputs(args) -> None:
    """Every output location, before any work."""
    from dif.atomic import check_distinct, check_output_dir, check_output_file

    check_output_file(args.json, "--json")
    check_output_file(args.csv, "--csv")
    check_output_dir(args.plots, "--plots")
    check_output_file(args.resume, "--resume")
    check_distinct({"--json": args.json, "--csv": args.csv, "--resume": args.resume})


def _write(args, json_payload, csv_header, csv_rows) -> None:
    """JSON and CSV together, each atomically (texts made first, so neither is written if the
    other cannot be made)."""
    from dif.atomic import csv_text, write_text_atomic

    texts = []
    if args.json:
        texts.append((args.json, json.dumps(json_payload, indent=2) + "\n"))
    if args.csv:
        texts.append((args.csv, csv_text(csv_header, csv_rows)))
    for path, text in texts:
        write_text_atomic(path, text)


def _find_inputs(data: Path):
    """(paths, labels, labelled, LabelledSet or None, skipped entries) of DATA_DIR."""
    from dif.data import find_labelled, is_image_file, is_labelled_dir, scan_folder
    from dif.errors import DIFError, shown

    if not data.exists():
        raise DIFError(f"data not found: {shown(data)}")
    if data.is_dir() and is_labelled_dir(data):
        ds = find_labelled(data)
        return ds.paths, ds.labels, True, ds, ds.skipped
    if data.is_dir():
        paths, skipped = scan_folder(data)
        if not paths:
            raise DIFError(f"{shown(data)} holds no images and no 0_real/ 1_fake/ folders")
        return paths, [-1] * len(paths), False, None, skipped
    if is_image_file(data):
        return [data], [-1], False, None, []
    raise DIFError(f"not an image file: {shown(data)}")


def run_cross(args, device, world, store, say) -> int:
    from dif import plots
    from dif.evaluate import cross_detection
    from dif.lineage import find_generators, fingerprint_similarity, load_methods
    from dif.robustness import parse_perturbations

    methods = load_methods(args.check_dir, args, device)
    gens = find_generators(args.data_dir)
    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    results = cross_detection(methods, gens, conditions, batch_size=args.batch, workers=args.workers,
                              progress=not args.quiet, world=world, store=store)
    if not world.is_main:
        return 0
    score = next(iter(methods.values())).info().get("score", "score")
    for cond, res in results.items():
        print(f"\n[{cond}] accuracy (rows: fingerprints, columns: generators; score {score})")
        width = max(len(n) for n in res.fingerprints) + 2
        print(" " * width + " ".join(f"{g[:9]:>9}" for g in res.generators))
        for i, n in enumerate(res.fingerprints):
            print(f"{n:<{width}}" + " ".join(f"{_fmt(v):>9}" for v in res.accuracy[i]))
        print(f"[{cond}] ROC AUC")
        for i, n in enumerate(res.fingerprints):
            print(f"{n:<{width}}" + " ".join(f"{_fmt(v):>9}" for v in res.auc[i]))
    signatures = {n: m.signature() for n, m in methods.items()}
    names, sim = None, None
    if all(s is not None for s in signatures.values()):
        names, sim = fingerprint_similarity(signatures)  # type: ignore[arg-type]
        print("\nfingerprint similarity (peak |NCC| over circular shifts)")
        width = max(len(n) for n in names) + 2
        for i, n in enumerate(names):
            print(f"{n:<{width}}" + " ".join(f"{v:9.3f}" for v in sim[i]))
    extractors = next(iter(results.values())).extractors
    payload = {"score": score, "extractors": extractors, "methods": {n: m.name for n, m in methods.items()}}
    if sim is not None:
        payload["similarity"] = {"names": names, "matrix": sim.tolist()}
    payload.update({c: r.to_json() for c, r in results.items()})
    rows = [[c, r["fingerprint"], r["generator"], r["extractor"]] + [r[k] for k in METRIC_KEYS]
            for c, res in results.items() for r in res.rows]
    _write(args, payload, ["perturbation", "fingerprint", "generator", "extractor"] + METRIC_KEYS, rows)
    if args.plots:
        for c, res in results.items():
            suffix = "" if c == "clean" else f"_{c}"
            plots.save_heatmap_png(res.accuracy, res.fingerprints, res.generators, args.plots / f"cross_accuracy{suffix}.png",
                                   f"Cross-detection accuracy ({c}, {score})", "images of generator", "fingerprint of")
            plots.save_heatmap_png(res.auc, res.fingerprints, res.generators, args.plots / f"cross_auc{suffix}.png",
                                   f"Cross-detection ROC AUC ({c}, {score})", "images of generator", "fingerprint of")
        if sim is not None and names is not None:
            off = sim[~np.eye(len(names), dtype=bool)]
            plots.save_heatmap_png(sim, names, names, args.plots / "similarity.png",
                                   "Fingerprint similarity (peak |NCC| over shifts)", "fingerprint", "fingerprint",
                                   vmin=0.0, vmax=float(max(0.05, np.nanmax(off)) if off.size else 1.0), fmt="{:.3f}")
            plots.save_fingerprint_panel_png(signatures, args.plots / "fingerprints.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    from dif.distributed import ScoreStore, close_world, init_world

    _check_outputs(args)  # on every process alike, before the process group starts
    world, device = init_world(resolve_device(args.device))
    store = ScoreStore(args.resume, world) if args.resume else None
    try:
        return _main(args, world, device, store)
    finally:
        if store is not None:
            store.close()
        close_world(world)


def _main(args, world, device, store) -> int:
    """The evaluation, on every process; only the first prints and writes."""

    from dif import plots
    from dif.errors import DIFError, shown
    from dif.evaluate import evaluate_labelled, score_unlabelled
    from dif.methods import load_method
    from dif.robustness import parse_perturbations

    if args.cross:
        return run_cross(args, device, world, store, print)
    perturbations = parse_perturbations(args.perturb) if args.perturb else []
    data = Path(args.data_dir)
    paths, labels, labelled, ds, skipped_entries = _find_inputs(data)
    if perturbations and not labelled:
        raise DIFError("--perturb needs a labelled DATA_DIR (0_real/ and 1_fake/)")
    method = load_method(args.check_dir, args.epoch, args, device)
    if world.is_main:
        print(method.summary_line())
    for p, why in skipped_entries if world.is_main else []:  # found by the folder scan: the same on every rank
        logging.getLogger("eval_dif").warning("skipping %s: %s", shown(p), why)
    meta = dict(method.info(), method=method.name, data=str(data))
    label = method.score_label

    if not labelled:
        scored, pred = score_unlabelled(method, paths, args.batch, args.workers, progress=not args.quiet, world=world,
                                        store=store)
        if not world.is_main:
            return 0
        n_skipped = len(scored.skipped) + len(skipped_entries)
        if n_skipped:
            print(f"warning: skipped {n_skipped} unusable file(s) (see the warnings above)")
        shown_scores = method.display_scores(scored.scores["method"])
        short = "corr" if label == "correlation" else label
        for p, c, k in zip(scored.paths, shown_scores, pred):
            print(f"{shown(p)}\t{short} {c:+.5f}\t{'generated' if k == 1 else 'real'}")
        result = {"n_images": len(scored), "n_generated": int(pred.sum()), "threshold": method.threshold,
                  **method.metric_fields(), "skipped": n_skipped}
        rows = [[p, "", f"{c:.8f}", "fake" if k == 1 else "real"] for p, c, k in zip(scored.paths, shown_scores, pred)]
        _write(args, dict(result, **meta), ["path", "label", label, "prediction"], rows)
        if args.plots:
            plots.save_histogram_png(shown_scores, scored.labels, method.histogram_marks(), args.plots / "histogram.png",
                                     title=f"{label} of unlabelled images", xlabel=label)
        return 0

    evals = evaluate_labelled(method, ds, perturbations, args.batch, args.workers, progress=not args.quiet,
                              name="method", world=world, store=store)
    if not world.is_main:
        return 0
    results = {c: e.metrics for c, e in evals.items()}
    n_skipped = results["clean"]["skipped"]
    if n_skipped:
        print(f"warning: skipped {n_skipped} unusable file(s) (see the warnings above)")
    if not perturbations:
        m = results["clean"]
        print(f"Real Acc. {100 * m['real_accuracy']:.1f}% | Fake Acc. {100 * m['fake_accuracy']:.1f}% "
              f"---> Acc. {100 * m['accuracy']:.1f}%")
        print(f"AP {m['ap']:.3f} | AUC {m['auc']:.3f} | n_real {m['n_real']} | n_fake {m['n_fake']}")
        payload = dict(m, **meta)
        clean = evals["clean"].scored
        shown_scores = method.display_scores(clean.scores["method"])
        pred = (clean.scores["method"] > method.threshold)
        header = ["path", "label", label, "prediction"]
        rows = [[p, int(y), f"{c:.8f}", "fake" if k else "real"]
                for p, y, c, k in zip(clean.paths, clean.labels, shown_scores, pred)]
    else:
        print(f"{'perturbation':<13}{'acc':>7}{'real':>7}{'fake':>7}{'AP':>7}{'AUC':>7}")
        for cond, m in results.items():
            print(f"{cond:<13}{_fmt(m['accuracy']):>7}{_fmt(m['real_accuracy']):>7}{_fmt(m['fake_accuracy']):>7}"
                  f"{_fmt(m['ap']):>7}{_fmt(m['auc']):>7}")
        if len(perturbations) == 1:  # a single perturbation: the same keys as a clean run, and every condition
            payload = dict(results[perturbations[0]], perturbation=perturbations[0], perturbations=results, **meta)
        else:
            payload = dict(meta, perturbations=results)
        header = ["perturbation"] + METRIC_KEYS
        rows = [[c] + [m[k] for k in METRIC_KEYS] for c, m in results.items()]
    _write(args, payload, header, rows)
    if args.plots:
        clean = evals["clean"].scored
        name = method.info().get("checkpoint", str(args.check_dir))
        plots.save_histogram_png(method.display_scores(clean.scores["method"]), clean.labels, method.histogram_marks(),
                                 args.plots / "histogram.png", title=f"{label} with {shown(Path(name).parent.name)}/"
                                 f"{shown(Path(name).name)}", xlabel=label)
        plots.save_roc_png(clean.scores["method"], clean.labels, args.plots / "roc.png", title=f"ROC on {shown(data.name)}")
        if perturbations:
            names = list(results)
            plots.save_robustness_png(names, [results[n]["accuracy"] for n in names], [results[n]["auc"] for n in names],
                                      args.plots / "robustness.png",
                                      title=f"Robustness of {shown(Path(name).parent.name)} on {shown(data.name)}")
    return 0


def cli() -> int:
    """The installed command's entry point (``[project.scripts]`` in pyproject.toml)."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(cli())
