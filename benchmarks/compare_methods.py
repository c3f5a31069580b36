#!/usr/bin/env python3
"""DIF against DeepFeatureX under identical low-budget conditions: the same images, the same folds.

    python benchmarks/compare_methods.py [DATA_ROOT] [--folds 2] [--out results/compare]

Under ``torchrun --nproc_per_node N`` the generators are shared out among the processes and
rank 0 writes the same table. DATA_ROOT (default ../shared/data) is a folder of generator folders with 0_real/ and 1_fake/, or
the shared data itself (its cnndetection/* and dif_official/samples/* generators). For every
generator the images are split into the same stratified, seeded folds for every method; each
method is trained on the other folds with its own recipe and defaults (DIF: ``train_dif.py``'s, the
extractor chosen by ``auto`` unless ``--dif-denoiser`` fixes one), and scored on the held-out
fold: accuracy at the method's own threshold, ROC AUC, training and scoring time. Methods: DIF
(defaults), DeepFeatureX with a resnet18 from scratch, and with torchvision's ImageNet resnet18 when
its weights are in the torch hub cache (the run says so when they are not).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def generators(root: Path) -> dict[str, Path]:
    from dif.lineage import find_generators

    if (root / "cnndetection").is_dir() or (root / "dif_official").is_dir():
        out = {}
        for sub in ("cnndetection", "dif_official/samples"):
            if (root / sub).is_dir():
                out.update({f"{g}": p for g, p in find_generators(root / sub).items()})
        return out
    return find_generators(root)


def make_methods(args) -> dict:
    """name -> a function returning a fresh, untrained method (one per fold)."""
    from dif.config import DIFConfig
    from dif.deepfeaturex.models import imagenet_weights_file
    from dif.deepfeaturex.method import DeepFeatureXMethod
    from dif.deepfeaturex.train import DFXConfig
    from dif.methods.dif import DIFMethod

    out = {"DIF": lambda seed: DIFMethod.build(DIFConfig(seed=seed, epochs=args.dif_epochs,
                                                         extractor=args.dif_denoiser)),
           "DFX resnet18 scratch": lambda seed: DeepFeatureXMethod.build(
               DFXConfig(seed=seed, epochs=args.dfx_epochs, pretrained="none"))}
    _, path = imagenet_weights_file("resnet18")
    if path.is_file():
        out["DFX resnet18 ImageNet"] = lambda seed: DeepFeatureXMethod.build(
            DFXConfig(seed=seed, epochs=args.dfx_epochs, pretrained="imagenet"))
    else:
        print(f"note: ImageNet resnet18 weights not in the cache ({path}); that variant is not run")
    return out


def main(argv=None) -> int:
    from dif.choose import TRAINING_DEFAULT, parse_auto
    from dif.cli import Parser, add_common_arguments, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("data_root", nargs="?", type=Path, default=None)
    p.add_argument("--folds", type=int_in(2, 100), default=2)
    p.add_argument("--dif-epochs", type=int_in(1, 10_000), default=100)
    p.add_argument("--dif-denoiser", default=TRAINING_DEFAULT,
                   help="DIF's residual extractor (default: train_dif.py's, auto with its short folds)")
    p.add_argument("--dfx-epochs", type=int_in(1, 10_000), default=50)
    p.add_argument("--only", default="", help="comma-separated generators (default: all)")
    p.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    p.add_argument("--out", type=Path, default=Path("results/compare"))
    add_common_arguments(p, seed=True)
    args = p.parse_args(argv)

    from _common import select, shared_data
    from dif.atomic import check_output_dir, write_text_atomic
    from dif.cli import resolve_device
    from dif.data import find_labelled
    from dif.distributed import close_world, init_world
    from dif.errors import DIFError
    from dif.evaluate import score_images, stratified_folds
    from dif.metrics import binary_metrics

    if parse_auto(args.dif_denoiser) is None:  # a bad --dif-denoiser (auto:K:E or fixed) before any work
        from dif.extractors import build_extractor

        build_extractor(args.dif_denoiser)
    root = args.data_root or shared_data()
    if root is None:
        raise DIFError("no DATA_ROOT given and ../shared/data not found (set DIF_SHARED_DATA)")
    gens = generators(root)
    gens = select(gens, args.only, "--only")
    check_output_dir(args.out, "--out")
    world, device = init_world(resolve_device(args.device))  # under torchrun: generators shared out by rank
    methods = select(make_methods(args), args.methods, "--methods", "methods")
    results: dict = {"folds": args.folds, "seed": args.seed, "device": str(device), "generators": {}}
    t_all = time.perf_counter()
    names_all = list(gens)
    for g in [names_all[i] for i in world.shard(len(names_all))]:
        ds = find_labelled(gens[g])
        paths, labels = ds.paths, np.array(ds.labels)
        folds = stratified_folds(labels, args.folds, args.seed)
        per = {n: [] for n in methods}
        for k, held in enumerate(folds):
            train = np.setdiff1d(np.arange(len(paths)), held)
            for name, make in methods.items():
                m = make(args.seed + k)
                t0 = time.perf_counter()
                m.fit([paths[i] for i in train], labels[train].tolist(), device=device, progress=not args.quiet)
                t_fit = time.perf_counter() - t0
                t0 = time.perf_counter()
                s = score_images({"m": m}, [paths[i] for i in held], labels[held].tolist(), m.input_transform()[0],
                                 workers=0)
                t_score = time.perf_counter() - t0
                met = binary_metrics(s.scores["m"], s.labels, m.threshold)
                ext = getattr(getattr(m, "config", None), "extractor", None)  # DIF: what auto chose, if it chose
                per[name].append({"accuracy": met["accuracy"], "auc": met["auc"], "fit_s": t_fit,
                                  "score_s_per_image": t_score / max(1, len(s)), "extractor": ext})
                print(f"{g} fold {k + 1}/{len(folds)} {name}: acc {met['accuracy']:.3f} AUC {met['auc']:.3f} "
                      f"(fit {t_fit:.0f} s{', ' + ext if ext else ''})", flush=True)
        results["generators"][g] = {
            "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
            "methods": {n: {"accuracy": float(np.mean([r["accuracy"] for r in v])),
                            "auc": float(np.mean([r["auc"] for r in v])),
                            "fit_s": float(np.mean([r["fit_s"] for r in v])),
                            "score_s_per_image": float(np.mean([r["score_s_per_image"] for r in v])),
                            "folds": v} for n, v in per.items()}}
        if not world.distributed:
            write_text_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    parts = world.gather(results["generators"])
    close_world(world)
    if not world.is_main:
        return 0
    results["generators"] = {g: r for part in parts for g, r in part.items()}
    results["generators"] = {g: results["generators"][g] for g in names_all if g in results["generators"]}
    results["processes"] = world.size
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    names = list(methods)
    lines = [f"Held-out accuracy / AUC, {args.folds}-fold, same folds for every method (seed {args.seed}); "
             f"fit time per fold", "",
             "| generator | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for g, r in results["generators"].items():
        cells = [f"{r['methods'][n]['accuracy']:.3f} / {r['methods'][n]['auc']:.3f} ({r['methods'][n]['fit_s']:.0f} s)"
                 for n in names]
        lines.append(f"| {g} | {r['n_real']}+{r['n_fake']} | " + " | ".join(cells) + " |")
    means = [f"{np.mean([r['methods'][n]['accuracy'] for r in results['generators'].values()]):.3f} / "
             f"{np.mean([r['methods'][n]['auc'] for r in results['generators'].values()]):.3f}" for n in names]
    lines.append("| **mean** | | " + " | ".join(f"**{c}**" for c in means) + " |")
    text = "\n".join(lines)
    print(text)
    write_text_atomic(args.out / "table.md", text + "\n")
    write_text_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
