#!/usr/bin/env python3
"""Does ``--denoiser auto`` beat a fixed extractor on data the choice did not see?

For every generator folder (``DATA_ROOT/<generator>/{0_real,1_fake}``, several roots allowed) and
every outer fold of a seeded stratified k-fold: a DIF fingerprint is trained on the training part
with each fixed extractor and with ``auto`` (which chooses among the same extractors out of fold
*on the training part only*), and scored on the held-out part. An auto spec (``auto`` =
train_dif.py's ``auto``, ``auto:K[:E]``, ``auto:meandiff``) runs only its choice when every candidate is
among the fixed extractors: its final fingerprint would be the chosen candidate's fixed training
(same residuals, same seed; tests/test_choose.py checks it), so it takes that one's held-out
scores. Reports held-out accuracy (each
fingerprint's own centres) and ROC AUC per generator, and their means per data root, optionally
after ``--perturb`` (both classes, after training). ``ensemble`` (on when two or more fixed
extractors run) averages the fixed fingerprints' scores, each first put on one scale: minus its
threshold, over the distance between its two centres (threshold 0): the score of
``train_dif.py --denoiser ensemble:<the fixed extractors>``, whose members are the same fingerprints.

    python benchmarks/extractor_choice.py ROOT [ROOT ...] [--folds 2] [--epochs 30] [--crop 256]
        [--extractors highpass,wavelet-dwt,wavelet,dncnn,auto:2:10,auto:meandiff] [--augment 2]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    import numpy as np

    from dif.atomic import check_output_file, write_text_atomic
    from dif.choose import CANDIDATES, choose_extractor, parse_auto
    from dif.cli import Parser, int_in
    from dif.config import DIFConfig
    from dif.data import find_labelled
    from dif.evaluate import score_images, stratified_folds
    from dif.extractors import same_extractor
    from dif.lineage import find_generators
    from dif.methods.dif import DIFMethod
    from dif.methods.dif_ensemble import DIFEnsemble
    from dif.metrics import binary_metrics
    from dif.robustness import get_perturbation, parse_perturbations

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("roots", nargs="+", type=Path, help="data roots of generator folders")
    p.add_argument("--extractors", default=",".join(CANDIDATES) + ",auto",
                   help="comma-separated specs, auto specs included (auto = train_dif.py's default, auto:K[:E], "
                        "auto:meandiff); with every candidate among them an auto spec runs its choice only and takes "
                        "the chosen fixed fingerprint's scores")
    p.add_argument("--folds", type=int_in(2, 100), default=2)
    p.add_argument("--epochs", type=int_in(1, 10**5), default=30)
    p.add_argument("--crop", type=int_in(32, 8192), default=256)
    p.add_argument("--augment", type=int_in(0, 100), default=0)
    p.add_argument("--perturb", default="", help="also score the held-out images after these perturbations")
    p.add_argument("--seed", type=int_in(0, 2**31), default=0)
    p.add_argument("--only", default="", help="comma-separated generator folders")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    check_output_file(args.json, "--json")
    specs = [s.strip() for s in args.extractors.split(",") if s.strip()]
    autos = {s: parse_auto(s) for s in specs}  # None: a fixed extractor
    conds = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    import torch

    device = torch.device("cpu")
    out: dict = {"folds": args.folds, "epochs": args.epochs, "crop": args.crop, "augment": args.augment,
                 "roots": {}}
    t0 = time.perf_counter()
    from _common import select

    found = {root: find_generators(root) for root in args.roots}
    select({g: None for gens in found.values() for g in gens}, args.only, "--only")  # an unknown name: one line
    for root in args.roots:
        gens = {g: q for g, q in found[root].items() if not args.only or g in args.only.split(",")}
        res_root: dict = {}
        for g, folder in gens.items():
            ds = find_labelled(folder)
            labels = np.array(ds.labels)
            fixed = [s for s in specs if autos.get(s) is None]
            shown = specs + (["ensemble"] if len(fixed) > 1 else [])
            per = {(s, c): [] for s in shown for c in conds}
            chosen: dict[str, list] = {s: [] for s in autos if autos[s] is not None}
            for k, held in enumerate(stratified_folds(labels, args.folds, args.seed)):
                train = np.setdiff1d(np.arange(len(labels)), held)
                scaled = {c: [] for c in conds}
                for s in sorted(specs, key=lambda s: autos.get(s) is not None):  # the fixed ones first
                    cfg = DIFConfig(epochs=args.epochs, crop=args.crop, augment=args.augment, seed=args.seed + k,
                                    extractor=s, checkpoint_every=args.epochs).validate()
                    a = autos.get(s)
                    if a is not None and set(CANDIDATES) <= set(fixed):
                        # auto's final fingerprint is the chosen candidate's fixed training (same residuals, same
                        # seed): only its choice is run here, and the fixed fingerprint's held-out scores are its own
                        pick = choose_extractor([ds.paths[i] for i in train], labels[train].tolist(), cfg, device,
                                                folds=a.folds, fold_epochs=a.fold_epochs, criterion=a.criterion)[0]
                        chosen[s].append(pick)
                        base = next(f for f in fixed if same_extractor(f, pick))
                        for c in conds:
                            per[(s, c)].append(per[(base, c)][-1])  # the fixed one's, this fold
                        continue
                    m = DIFMethod.build(cfg)
                    report = m.fit([ds.paths[i] for i in train], labels[train].tolist(), device=device)
                    if a is not None:
                        chosen[s].append(report["extractor_choice"]["chosen"])
                    for c in conds:
                        t = None if c == "clean" else get_perturbation(c)
                        sc = score_images({"m": m}, [ds.paths[i] for i in held], labels[held].tolist(), t,
                                          allow_smaller=t is not None, batch_size=16, workers=0)
                        met = binary_metrics(sc.scores["m"], sc.labels, m.threshold)
                        per[(s, c)].append((met["accuracy"], met["auc"]))
                        if s in fixed:
                            scaled[c].append(DIFEnsemble.scaled(m, sc.scores["m"]))  # as --denoiser ensemble
                            scaled_labels = list(sc.labels)
                if "ensemble" in shown:
                    for c in conds:
                        met = binary_metrics(np.mean(scaled[c], axis=0), scaled_labels, 0.0)
                        per[("ensemble", c)].append((met["accuracy"], met["auc"]))
            res_root[g] = {f"{s}/{c}": {"accuracy": float(np.mean([a for a, _ in v])),
                                        "auc": float(np.mean([u for _, u in v]))} for (s, c), v in per.items()}
            res_root[g]["auto_chose"] = chosen
            res_root[g]["per_fold"] = {f"{s}/{c}": v for (s, c), v in per.items()}  # (accuracy, AUC) per fold
            print(f"{root.name}/{g}: " + "; ".join(f"{s} {res_root[g][f'{s}/clean']['accuracy']:.3f}/"
                                                  f"{res_root[g][f'{s}/clean']['auc']:.3f}" for s in shown)
                  + "".join(f" ({s} chose {', '.join(v)})" for s, v in chosen.items()), flush=True)
        means = {}
        for s in shown:
            for c in conds:
                v = [r[f"{s}/{c}"] for r in res_root.values()]
                means[f"{s}/{c}"] = {"accuracy": float(np.mean([x["accuracy"] for x in v])),
                                     "auc": float(np.mean([x["auc"] for x in v]))}
        out["roots"][str(root)] = {"generators": res_root, "mean": means}
        print(f"{root}: mean accuracy / AUC, " + "; ".join(
            f"{k} {v['accuracy']:.3f}/{v['auc']:.3f}" for k, v in means.items()), flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
