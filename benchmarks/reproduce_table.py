#!/usr/bin/env python3
"""Reproduce the DIF paper's accuracy table on a data root of generator folders.

    python benchmarks/reproduce_table.py DATA_ROOT [--folds 4] [--epochs 100] [--augment N]
        [--calibrate-folds 2] [--perturb all] [--out results/table]

For each DATA_ROOT/<generator>/{0_real,1_fake}: a fingerprint is trained per fold (k-fold when a
class has at most --kfold-below images, else one split with --train-size images per class for
training) and evaluated on the held-out images with both scores (corr, shift) and every set of
centres (paper, train, and cv when --calibrate-folds > 0), clean and under each perturbation.
Under ``torchrun --nproc_per_node N`` the generators are shared out among the processes and rank 0
writes the same files. Prints the paper's table with its accuracies beside ours (generators the data root lacks are shown
as missing) and writes results.json and results.csv to --out.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


PAPER = [  # (folder name, display name, accuracy % in the paper)
    ("sd14", "SD 1.4", 99.3), ("sd21", "SD 2.1", 89.5), ("mj", "MJ", 99.0), ("dalle_mini", "DALL-E mini", 99.0),
    ("glide", "GLIDE", 90.3), ("dalle_2", "DALL-E 2", 79.5), ("cyclegan", "CycleGAN", 94.4),
    ("stylegan", "StyleGAN", 91.5), ("stylegan2", "StyleGAN2", 99.9), ("stargan", "StarGAN", 96.9),
    ("biggan", "BigGAN", 91.8), ("gaugan", "GauGAN", 92.6), ("progan", "ProGAN", 57.7),
]


def parse_args(argv=None):
    from dif.cli import Parser, add_common_arguments, int_in
    from dif.config import DIFConfig, add_config_arguments

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("data_root")
    p.add_argument("--folds", type=int_in(2, 1000), default=4)
    p.add_argument("--kfold-below", type=int_in(1), default=200,
                   help="k-fold when a class has at most this many images (or at most --train-size)")
    add_config_arguments(p, DIFConfig, defaults=DIFConfig(augment=0),
                         exclude=("checkpoint_every", "calibrate", "folds", "boost", "alpha", "margin"))
    p.add_argument("--calibrate-folds", type=int_in(0, 1000), default=0, help="inner folds for cv centres (0: off)")
    p.add_argument("--perturb", default="", help="perturbations to evaluate too (e.g. all)")
    p.add_argument("--only", default="", help="comma-separated generator folders to run (default: all)")
    p.add_argument("--save-fingerprints", type=Path, default=None, help="save each generator's fold-1 fingerprint here")
    p.add_argument("--out", type=Path, default=Path("results/table"))
    add_common_arguments(p, device=False, denoiser="residual extractor (default: the package default)")
    return p.parse_args(argv)


def fold_plan(labels: np.ndarray, folds: int, kfold_below: int, train_size: int, seed: int) -> list[np.ndarray]:
    """Held-out index sets: ``folds`` stratified folds when a class is small (at most
    ``kfold_below`` or ``train_size`` images), else one split keeping ``train_size`` per class."""
    from dif.evaluate import holdout_split, stratified_folds

    n_min = min(int((labels == 0).sum()), int((labels == 1).sum()))
    if n_min <= max(kfold_below, train_size):
        if n_min < folds:
            from dif.errors import DIFError
            raise DIFError(f"--folds {folds} needs at least {folds} images per class (have {n_min})")
        return stratified_folds(labels, folds, seed)
    return [holdout_split(labels, train_size, seed)]


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm.auto import tqdm

    from dif.atomic import check_output_dir, write_csv_atomic, write_text_atomic
    from dif.calibration import calibrate, save_calibration
    from dif.checkpoint import save_checkpoint
    from dif.config import DIFConfig, config_from_args
    from dif.data import compute_residuals, find_labelled, training_residuals
    from dif.detect import SCORES, Detector, detection_metrics
    from dif.distributed import close_world, init_world
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.fingerprint import train_fingerprint
    from dif.lineage import find_generators
    from dif.robustness import compose, get_perturbation, parse_perturbations, parse_reencode

    gens = find_generators(args.data_root)
    perturbs = parse_perturbations(args.perturb) if args.perturb else []
    base = parse_reencode(args.reencode)
    from _common import select

    gens = select(gens, args.only, "--only")
    check_output_dir(args.out, "--out")
    check_output_dir(args.save_fingerprints, "--save-fingerprints")
    world, _ = init_world(torch.device("cpu"))  # under torchrun: generators shared out by rank
    ext = build_extractor(args.denoiser)
    cfg0 = config_from_args(DIFConfig, args, extractor=ext.spec, calibrate="cv" if args.calibrate_folds > 0 else "none",
                            folds=max(2, args.calibrate_folds)).validate()
    crop = (cfg0.crop, cfg0.crop)
    conditions = ["clean"] + perturbs
    results: dict = {"config": json.loads(cfg0.to_json()), "folds": args.folds, "generators": {}}
    t_start = time.perf_counter()

    plan = []
    for g, folder in gens.items():
        ds = find_labelled(folder)
        folds = fold_plan(np.array(ds.labels), args.folds, args.kfold_below, cfg0.train_size, args.seed)
        plan.append((g, ds, folds))
    plan = [plan[i] for i in world.shard(len(plan))]
    bar = tqdm(total=sum(len(f) for *_, f in plan), desc="folds", disable=args.quiet or not world.is_main)
    for g, ds, _ in plan:
        bar.set_description(g)
        ts = training_residuals(ds.paths, ds.labels, ext, crop, augment=cfg0.augment, reencode=cfg0.reencode,
                                seed=args.seed, kinds=cfg0.augment_kinds)
        cache = ts.cache
        n_clean = int(len(np.unique(ts.groups)))
        clean_labels = cache.labels.numpy()[:n_clean]
        clean_paths = cache.paths[:n_clean]
        # folds over the images that could be used (an unreadable one is skipped for every fold)
        folds = fold_plan(clean_labels, args.folds, args.kfold_below, cfg0.train_size, args.seed)
        evald = {"clean": (cache.residuals[:n_clean], clean_labels)}
        for c in perturbs:
            r = compute_residuals(clean_paths, clean_labels.tolist(), ext, crop, transform=compose(base, get_perturbation(c)),
                                  allow_smaller=True)
            keep = {p: i for i, p in enumerate(clean_paths)}
            # one tensor, or (sizes differ) one 1-image block per residual, so folds can index either
            blocks = r.residuals if isinstance(r.residuals, torch.Tensor) else [b[i:i + 1] for b in r.residuals for i in range(len(b))]
            evald[c] = (blocks, r.labels.numpy(), np.array([keep[p] for p in r.paths]))
        per = {}  # (score, centres, condition) -> list of per-fold metrics
        for fi, held in enumerate(folds):
            train_mask = ~np.isin(ts.groups, held)
            tr = torch.from_numpy(np.flatnonzero(train_mask))
            cfg = replace(cfg0, seed=args.seed + fi)
            state = train_fingerprint(cache.residuals[tr], cache.labels[tr], cfg)
            cal = calibrate(state, cfg, cache.residuals[tr], cache.labels[tr], ts.groups[train_mask])
            det0 = replace(Detector.from_state(state, cfg.centre_steps), max_shift=cfg.max_shift)
            if args.save_fingerprints and fi == 0:
                out = args.save_fingerprints / g
                out.mkdir(parents=True, exist_ok=True)
                state.epoch = cfg.epochs
                save_checkpoint(out / f"chk_{cfg.epochs}.pt", state, ext.spec)
                cfg.save(out)
                save_calibration(out, cal)
            for cond in conditions:
                if cond == "clean":
                    res_all, lab_all = evald["clean"]
                    res, lab = res_all[torch.from_numpy(held)], lab_all[held]
                else:
                    blocks, lab_all, src = evald[cond]
                    sel = np.flatnonzero(np.isin(src, held))
                    res = blocks[torch.from_numpy(sel)] if isinstance(blocks, torch.Tensor) else [blocks[i] for i in sel]
                    lab = lab_all[sel]
                if len(set(lab.tolist())) < 2:
                    continue
                for score in SCORES:
                    s = det0.correlate(res, score=score)
                    for method in ("paper", "train", "cv"):
                        entry = cal.get(method, {}).get(score)
                        if not entry:
                            continue
                        d = det0.with_centres(entry[0], entry[1], score)
                        per.setdefault((score, method, cond), []).append(detection_metrics(s, lab, d))
            bar.update()
        summary = {}
        for (score, method, cond), ms in per.items():
            acc = [m["accuracy"] for m in ms]
            auc = [m["auc"] for m in ms]
            summary[f"{score}/{method}/{cond}"] = {
                "accuracy": float(np.mean(acc)), "accuracy_std": float(np.std(acc)), "auc": float(np.mean(auc)),
                "real_accuracy": float(np.mean([m["real_accuracy"] for m in ms])),
                "fake_accuracy": float(np.mean([m["fake_accuracy"] for m in ms])), "folds": len(ms)}
        results["generators"][g] = {"n_real": int((clean_labels == 0).sum()), "n_fake": int((clean_labels == 1).sum()),
                                    "folds": len(folds), "results": summary}
        if not world.distributed:
            write_text_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    bar.close()
    parts = world.gather(results["generators"])
    close_world(world)
    if not world.is_main:
        return 0
    merged = {g: r for part in parts for g, r in part.items()}
    results["generators"] = {g: merged[g] for g in gens if g in merged}
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")

    # ---- the paper's layout
    combos = [k for k in ("corr/paper", "corr/train", "corr/cv", "shift/train", "shift/cv")
              if any(f"{k}/clean" in v["results"] for v in results["generators"].values())]
    names = {f: (n, a) for f, n, a in PAPER}
    rows = [(f, n, a) for f, n, a in PAPER] + [(g, g, None) for g in results["generators"] if g not in names]
    head = f"{'Generator':<13}{'Paper':>7}" + "".join(f"{c:>13}" for c in combos) + f"{'AUC corr':>10}{'AUC shift':>10}"
    lines = [f"Accuracy % ({args.folds}-fold where a class has <= {args.kfold_below} images; "
             f"{args.epochs} epochs; {ext.spec}; augment {args.augment})", head]
    for f, n, a in rows:
        paper = f"{a:.1f}" if a is not None else "-"
        r = results["generators"].get(f)
        if r is None:
            lines.append(f"{n:<13}{paper:>7}" + "".join(f"{'missing':>13}" for _ in combos))
            continue
        cells = "".join(f"{100 * r['results'][c + '/clean']['accuracy']:>13.1f}" for c in combos)
        aucs = "".join(f"{r['results'].get(s + '/train/clean', r['results'].get(s + '/paper/clean', {})).get('auc', float('nan')):>10.3f}"
                       for s in ("corr", "shift"))
        lines.append(f"{n:<13}{paper:>7}{cells}{aucs}")
    if perturbs:
        for combo in combos:
            lines.append("")
            lines.append(f"Accuracy % under perturbations ({combo})")
            lines.append(f"{'Generator':<13}" + "".join(f"{c:>10}" for c in conditions))
            for g, r in results["generators"].items():
                lines.append(f"{g:<13}" + "".join(
                    f"{100 * r['results'][f'{combo}/{c}']['accuracy']:>10.1f}" if f"{combo}/{c}" in r["results"] else f"{'-':>10}"
                    for c in conditions))
            mean = [np.mean([r["results"][f"{combo}/{c}"]["accuracy"] for r in results["generators"].values()
                             if f"{combo}/{c}" in r["results"]] or [np.nan]) for c in conditions]
            lines.append(f"{'mean':<13}" + "".join(f"{100 * m:>10.1f}" for m in mean))
    text = "\n".join(lines)
    print(text)
    write_text_atomic(args.out / "table.txt", text + "\n")
    write_csv_atomic(args.out / "results.csv",
                     ["generator", "score", "centres", "condition", "accuracy", "accuracy_std", "real_accuracy",
                      "fake_accuracy", "auc", "folds"],
                     [[g, *key.split("/"), m["accuracy"], m["accuracy_std"], m["real_accuracy"], m["fake_accuracy"],
                       m["auc"], m["folds"]] for g, r in results["generators"].items() for key, m in r["results"].items()])
    print(f"\n{results['seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
