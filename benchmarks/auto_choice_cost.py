#!/usr/bin/env python3
"""What ``auto``'s choice costs on a training folder, candidate by candidate, worst case included.

``train_dif.py``'s log gives a whole training's residual and U-Net seconds, but not what each
candidate of ``--denoiser auto`` spent, and ``auto`` stops scoring candidates once none of the
dearer ones can win, so an easy data set times its best case. This runs the choice alone, with
``train_dif.py``'s defaults (crop 256, every tile, 2 perturbed copies), and reports for every
candidate its residual pass and its criterion's seconds. ``--score-all`` scores every candidate
(the same choice; the worst case's cost). A fixed extractor's training costs its residual pass
(the candidate's ``residual_seconds``) plus the U-Net steps, which are the same whichever
extractor made the residuals: add the ``train`` seconds of any ``train_dif.py`` run on the same
folder to compare ``auto`` with a fixed extractor at sizes where running both would take hours.

``--fold-epochs 5,10`` instead scores every candidate's one set of residuals with fold
fingerprints of each length and reports the choice ``auto``'s rule makes under each: whether a
shorter fold training changes the choice, for the price of one residual pass per candidate.

    python benchmarks/auto_choice_cost.py TRAIN_DIR [--spec auto] [--score-all] [--out OUT.json]
    python benchmarks/auto_choice_cost.py TRAIN_DIR --fold-epochs 5,10 [--out OUT.json]
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from dif.atomic import check_output_file
    from dif.choose import parse_auto
    from dif.cli import Parser
    from dif.errors import DIFError

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("train", type=Path, help="a folder with 0_real/ and 1_fake/")
    p.add_argument("--spec", default="auto", help="an auto spec: auto, auto:K[:E] or auto:meandiff")
    p.add_argument("--score-all", action="store_true", help="score every candidate (the worst case's cost)")
    p.add_argument("--fold-epochs", default="", help="comma-separated fold lengths E: the choice of auto:K:E under "
                   "each, on the same residuals (K from --spec; every candidate is scored)")
    p.add_argument("--out", type=Path, default=None, help="JSON of the report")
    args = p.parse_args(argv)
    lengths = []
    for e in (x.strip() for x in args.fold_epochs.split(",") if x.strip()):
        if not e.isdigit() or not 1 <= int(e) <= 100_000:
            raise DIFError(f"--fold-epochs {args.fold_epochs}: give fold lengths from 1 to 100000, e.g. 5,10")
        lengths.append(int(e))
    spec = parse_auto(args.spec)
    if spec is None:
        raise DIFError(f"--spec {args.spec}: give an auto spec (auto, auto:K[:E] or auto:meandiff)")
    check_output_file(args.out, "--out")
    import torch

    from dif.choose import choose_extractor
    from dif.config import DIFConfig
    from dif.data import find_labelled

    ds = find_labelled(args.train)
    cfg = DIFConfig(extractor=args.spec).validate()
    if lengths:
        if spec.criterion != "folds":
            raise DIFError("--fold-epochs needs a fold spec (auto or auto:K), not auto:meandiff")
        return compare_lengths(ds, cfg, spec.folds, lengths, args.out)
    t0 = time.perf_counter()
    chosen, ts, report = choose_extractor(ds.paths, ds.labels, cfg, torch.device("cpu"), folds=spec.folds,
                                          fold_epochs=spec.fold_epochs, criterion=spec.criterion,
                                          stop_early=not args.score_all)
    out = {"train": str(args.train), "images": len(ds.paths), "residuals": len(ts.cache), "spec": args.spec,
           "score_all": args.score_all, "threads": torch.get_num_threads(), "chosen": chosen,
           "candidates": report["candidates"], "skipped": report.get("skipped", []),
           "fallback": report.get("fallback"),
           "seconds": round(time.perf_counter() - t0, 1),
           "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    return emit(out, args.out)


def compare_lengths(ds, cfg, folds: int, lengths: list[int], out_path) -> int:
    """Every candidate's residuals once, its out-of-fold AUC after each fold length, and the
    candidate ``auto``'s rule (best AUC, ties within ``TIE`` to the cheaper) picks under each."""
    from dataclasses import replace

    import torch

    from dif.choose import CANDIDATES, _leader, config_residuals, fewest_images, out_of_fold_auc
    from dif.errors import DIFError
    from dif.extractors import build_extractor

    device = torch.device("cpu")
    rows: dict[int, list[dict]] = {e: [] for e in lengths}
    t0 = time.perf_counter()
    for name in CANDIDATES:
        ext = build_extractor(name, device, precision=cfg.residual_precision)
        ts = config_residuals(ds.paths, ds.labels, ext, cfg, device)
        if fewest_images(ts) < folds:
            raise DIFError(f"{ds.root}: fewer than {folds} usable images in a class, nothing to score out of fold")
        for e in lengths:
            auc = out_of_fold_auc(ts, replace(cfg, extractor=ext.spec, epochs=min(e, cfg.epochs)), folds, device)
            rows[e].append({"extractor": ext.spec, "auc": round(auc, 4)})
        del ts
    out = {"train": str(ds.root), "images": len(ds.paths), "folds": folds,
           "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
           "by_fold_epochs": {str(e): {"chosen": _leader(rows[e])["extractor"], "candidates": rows[e]}
                              for e in lengths}}
    return emit(out, out_path)


def emit(report: dict, path) -> int:
    """Print the report as JSON and write it to ``path`` when given (atomically)."""
    from dif.atomic import write_text_atomic

    text = json.dumps(report, indent=1)
    print(text)
    if path:
        write_text_atomic(path, text + "\n")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
