#!/usr/bin/env python3
"""How early does ``--denoiser auto``'s ranking of extractors settle, and does a training-free
criterion rank them the same way?

    python benchmarks/auto_criterion.py DATA_DIR [DATA_DIR ...] [--epochs 5,10,20,50,100] [--json out.json]

Each DATA_DIR is a ``0_real`` / ``1_fake`` folder whose images all act as training images (the
choice never sees a test image). For every candidate extractor the residuals are computed as
``auto`` computes them (clean + ``--augment`` copies), the same 2 fold fingerprints as ``auto``
are trained once for the largest epoch count, and the out-of-fold ROC AUC (on the clean images)
is read at every epoch count in ``--epochs`` from the fingerprint as it stood then. Beside it,
training-free criteria: the out-of-fold AUC of the *mean-difference* fingerprint (mean fake
residual minus mean real residual of the other fold, the classical fingerprint estimate),
on the clean residuals only (``meandiff``) and on all copies (``meandiff-aug``).

It prints, per data set, every candidate's AUC under every criterion and the extractor each
criterion chooses with ``auto``'s rule (the cheapest within 0.005 of the best), so a cheaper
criterion can be judged by how often it chooses what the full 100-epoch criterion chooses and
by how much reference AUC its choice gives up (regret).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch
    from sklearn.metrics import roc_auc_score

    from dif.choose import CANDIDATES, TIE
    from dif.cli import Parser, int_in, setup_logging
    from dif.config import DIFConfig
    from dif.data import find_labelled, training_residuals
    from dif.detect import Detector
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.fingerprint import mean_difference, pearson, train_fingerprint
    from dif.sampling import stratified_folds

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path)
    p.add_argument("--epochs", default="5,10,20,50,100", help="epoch counts at which to read the fold fingerprints")
    p.add_argument("--crop", type=int_in(16, 8192), default=256)
    p.add_argument("--augment", type=int_in(0, 16), default=2)
    p.add_argument("--folds", type=int_in(2, 20), default=2)
    p.add_argument("--threads", type=int_in(0, 256), default=0, help="torch threads (0: torch's default)")
    p.add_argument("--extractors", default=",".join(CANDIDATES), help="the candidates to score (default: auto's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    setup_logging()
    try:
        marks = sorted({int(e) for e in args.epochs.split(",")})
    except ValueError:
        raise DIFError(f"--epochs takes whole numbers separated by commas, got {args.epochs!r}") from None
    if not marks or marks[0] < 1:
        raise DIFError("--epochs must be whole numbers >= 1")
    from dif.atomic import check_output_file

    check_output_file(args.json, "--json")  # before minutes of work
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = [find_labelled(d) for d in args.data]
    cfg = DIFConfig(crop=args.crop, augment=args.augment, epochs=marks[-1])

    def choose(aucs: dict[str, float]) -> str:
        best = max(aucs.values())
        return next(c for c in aucs if aucs[c] >= best - TIE)

    report = []
    for data in sets:
        row = {"data": str(data.root), "candidates": {}}
        for spec in [e.strip() for e in args.extractors.split(",") if e.strip()]:
            t0 = time.perf_counter()
            ext = build_extractor(spec)
            ts = training_residuals(data.paths, data.labels, ext, (cfg.crop, cfg.crop), augment=cfg.augment,
                                    seed=cfg.seed, kinds=cfg.augment_kinds)
            t_res = time.perf_counter() - t0
            res, lab = ts.cache.residuals, ts.cache.labels
            g = ts.groups
            ids = np.unique(g)
            id_labels = np.array([int(lab[np.flatnonzero(g == i)[0]]) for i in ids])
            first = np.array([np.flatnonzero(g == i)[0] for i in ids])
            scores = {f"dif@{e}": np.full(len(ids), np.nan) for e in marks}
            scores["meandiff"] = np.full(len(ids), np.nan)
            scores["meandiff-aug"] = np.full(len(ids), np.nan)
            for k, held_ids in enumerate(stratified_folds(id_labels, args.folds, cfg.seed + 17)):
                held = np.isin(g, ids[held_ids])
                tr = torch.from_numpy(np.flatnonzero(~held))
                te = torch.from_numpy(first[held_ids])
                snaps = {}

                def keep(state, snaps=snaps):
                    if state.epoch in marks:
                        d = Detector.from_state(state, cfg.centre_steps)
                        snaps[state.epoch] = d.direction * d.correlate(res[te], score="corr")

                train_fingerprint(res[tr], lab[tr], replace(cfg, seed=cfg.seed + 1000 + k), on_epoch_end=keep)
                for e, v in snaps.items():
                    scores[f"dif@{e}"][held_ids] = v
                clean_tr = tr[np.isin(tr.numpy(), first)]
                for name, idx in (("meandiff", clean_tr), ("meandiff-aug", tr)):
                    f = mean_difference(res[idx], lab[idx])
                    scores[name][held_ids] = pearson(f.double(), res[te].double()).numpy()
            aucs = {n: round(float(roc_auc_score(id_labels, v)), 4) for n, v in scores.items()}
            row["candidates"][ext.spec] = {"auc": aucs, "residual_seconds": round(t_res, 1),
                                           "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{data.root.name:>12} {ext.spec:>14}: " + " ".join(f"{n} {v:.3f}" for n, v in aucs.items())
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        crit = list(next(iter(row["candidates"].values()))["auc"])
        row["chosen"] = {c: choose({s: v["auc"][c] for s, v in row["candidates"].items()}) for c in crit}
        ref = f"dif@{marks[-1]}"
        row["regret"] = {c: round(row["candidates"][row["chosen"][ref]]["auc"][ref]
                                  - row["candidates"][row["chosen"][c]]["auc"][ref], 4) for c in crit}
        print(f"{data.root.name:>12} chosen: " + ", ".join(f"{c} {row['chosen'][c]} (-{row['regret'][c]:.3f})"
                                                           for c in crit), flush=True)
        report.append(row)
    if report:
        crit = list(report[0]["chosen"])
        ref = f"dif@{marks[-1]}"
        print("criterion: same choice as " + ref + " / mean regret (reference AUC given up)")
        for c in crit:
            same = sum(r["chosen"][c] == r["chosen"][ref] for r in report)
            print(f"  {c:>14}: {same}/{len(report)} / {np.mean([r['regret'][c] for r in report]):.4f}")
    if args.json:
        from dif.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
