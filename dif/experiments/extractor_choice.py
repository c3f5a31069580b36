"""Does ``--extractor auto`` beat a fixed extractor on data the choice did not see?
(``benchmarks/extractor_choice.py``)

For every generator folder and every outer fold of a seeded stratified k-fold: a DIF fingerprint
is trained on the training part with each fixed extractor and with each auto spec (which chooses
among the same extractors out of fold on the training part only), and scored on the held-out
part. An auto spec runs only its choice when every candidate is among the fixed extractors: its
final fingerprint would be the chosen candidate's fixed training (same residuals, same seed;
tests/test_choose.py checks it), so it takes that one's held-out scores. ``ensemble`` (on when two
or more fixed extractors run) averages the fixed fingerprints' scores on one scale, as
``train_dif.py --extractor ensemble`` does.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from ..atomic import check_output_file, write_text_atomic
from ..choose import CANDIDATES, choose_extractor, parse_auto
from ..config import DIFConfig
from ..data import find_labelled
from ..errors import DIFError
from ..evaluate import score_images
from ..sampling import stratified_folds
from ..extractors import same_extractor
from ..lineage import find_generators
from ..methods.dif import DIFMethod
from ..methods.dif_ensemble import DIFEnsemble
from ..metrics import binary_metrics
from ..robustness import get_perturbation, parse_perturbations
from .common import select


def run(args) -> int:
    """Held-out accuracy / AUC per generator and extractor spec, and their means per data root."""
    check_output_file(args.json, "--json")
    specs = [s.strip() for s in args.extractors.split(",") if s.strip()]
    autos = {s: parse_auto(s) for s in specs}  # None: a fixed extractor
    conds = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    auto_perturb = parse_perturbations(args.auto_perturb) if args.auto_perturb else []
    fixed = [s for s in specs if autos[s] is None]
    candidates = [c.strip() for c in args.auto_candidates.split(",") if c.strip()]
    custom = auto_perturb or candidates != list(CANDIDATES)
    if custom and not set(candidates) <= set(fixed):
        raise DIFError(f"--auto-candidates / --auto-perturb: list every candidate ({','.join(candidates)}) in "
                       f"--extractors too: the auto spec takes the held-out scores of the fixed fingerprint it chooses")
    device = torch.device("cpu")
    out: dict = {"folds": args.folds, "epochs": args.epochs, "crop": args.crop, "augment": args.augment,
                 "auto_candidates": candidates, "auto_perturb": auto_perturb, "roots": {}}
    t0 = time.perf_counter()

    found = {root: find_generators(root) for root in args.roots}
    select({g: None for gens in found.values() for g in gens}, args.only, "--only")  # an unknown name: one line
    for root in args.roots:
        gens = {g: q for g, q in found[root].items() if not args.only or g in args.only.split(",")}
        res_root: dict = {}
        for g, folder in gens.items():
            ds = find_labelled(folder)
            labels = np.array(ds.labels)
            shown = specs + (["ensemble"] if len(fixed) > 1 else [])
            per = {(s, c): [] for s in shown for c in conds}
            chosen: dict[str, list] = {s: [] for s in autos if autos[s] is not None}
            reports: dict[str, list] = {s: [] for s in chosen}  # every candidate's out-of-fold AUCs, per outer fold
            for k, held in enumerate(stratified_folds(labels, args.folds, args.seed)):
                train = np.setdiff1d(np.arange(len(labels)), held)
                scaled = {c: [] for c in conds}
                for s in sorted(specs, key=lambda s: autos.get(s) is not None):  # the fixed ones first
                    cfg = DIFConfig(epochs=args.epochs, crop=args.crop, augment=args.augment, seed=args.seed + k,
                                    extractor=s, checkpoint_every=args.epochs).validate()
                    a = autos.get(s)
                    if a is not None and set(candidates) <= set(fixed):
                        # auto's final fingerprint is the chosen candidate's fixed training (same residuals, same
                        # seed): only its choice is run here, and the fixed fingerprint's held-out scores are its own
                        pick, _, rep = choose_extractor([ds.paths[i] for i in train], labels[train].tolist(), cfg,
                                                        device, candidates=candidates, folds=a.folds,
                                                        fold_epochs=a.fold_epochs, perturbations=auto_perturb)
                        chosen[s].append(pick)
                        reports[s].append(rep["candidates"])
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
                            scaled[c].append(DIFEnsemble.scaled(m, sc.scores["m"]))  # as --extractor ensemble
                            scaled_labels = list(sc.labels)
                if "ensemble" in shown:
                    for c in conds:
                        met = binary_metrics(np.mean(scaled[c], axis=0), scaled_labels, 0.0)
                        per[("ensemble", c)].append((met["accuracy"], met["auc"]))
            res_root[g] = {f"{s}/{c}": {"accuracy": float(np.mean([a for a, _ in v])),
                                        "auc": float(np.mean([u for _, u in v]))} for (s, c), v in per.items()}
            res_root[g]["auto_chose"] = chosen
            res_root[g]["auto_candidates"] = reports
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

