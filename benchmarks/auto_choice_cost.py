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

    python benchmarks/auto_choice_cost.py TRAIN_DIR [--spec auto] [--score-all] [--out OUT.json]
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from dif.atomic import check_output_file, write_text_atomic
    from dif.choose import parse_auto
    from dif.cli import Parser
    from dif.errors import DIFError

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("train", type=Path, help="a folder with 0_real/ and 1_fake/")
    p.add_argument("--spec", default="auto", help="an auto spec: auto, auto:K[:E] or auto:meandiff")
    p.add_argument("--score-all", action="store_true", help="score every candidate (the worst case's cost)")
    p.add_argument("--out", type=Path, default=None, help="JSON of the report")
    args = p.parse_args(argv)
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
    t0 = time.perf_counter()
    chosen, ts, report = choose_extractor(ds.paths, ds.labels, cfg, torch.device("cpu"), folds=spec.folds,
                                          fold_epochs=spec.fold_epochs, criterion=spec.criterion,
                                          stop_early=not args.score_all)
    out = {"train": str(args.train), "images": len(ds.paths), "residuals": len(ts.cache), "spec": args.spec,
           "score_all": args.score_all, "threads": torch.get_num_threads(), "chosen": chosen,
           "candidates": report["candidates"], "skipped": report.get("skipped", []),
           "seconds": round(time.perf_counter() - t0, 1),
           "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
