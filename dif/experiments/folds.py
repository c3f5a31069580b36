"""Held-out comparisons over folds: every registered method trained through ``fit`` on the same
training folds and scored on the same held-out folds, clean and perturbed. The paper's table
(``benchmarks/paper_table.py``) and DIF against DeepFeatureX (``benchmarks/compare_methods.py``)
are this one engine with other methods and another printout."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from ..data import find_labelled
from ..distributed import World
from ..errors import DIFError
from ..lineage import find_generators
from ..methods.base import Method
from ..sampling import holdout_split, stratified_folds
from .common import held_out_metrics

log = logging.getLogger(__name__)

# (folder name, display name, accuracy % in the paper's table)
PAPER = [
    ("sd14", "SD 1.4", 99.3), ("sd21", "SD 2.1", 89.5), ("mj", "MJ", 99.0), ("dalle_mini", "DALL-E mini", 99.0),
    ("glide", "GLIDE", 90.3), ("dalle_2", "DALL-E 2", 79.5), ("cyclegan", "CycleGAN", 94.4),
    ("stylegan", "StyleGAN", 91.5), ("stylegan2", "StyleGAN2", 99.9), ("stargan", "StarGAN", 96.9),
    ("biggan", "BigGAN", 91.8), ("gaugan", "GauGAN", 92.6), ("progan", "ProGAN", 57.7),
]


def generators(root: Path) -> dict[str, Path]:
    """Generator folders of a data root; the shared data itself gives its CNNDetection sets and the
    DIF samples."""
    if (root / "cnndetection").is_dir() or (root / "dif_official").is_dir():
        out: dict[str, Path] = {}
        for sub in ("cnndetection", "dif_official/samples"):
            if (root / sub).is_dir():
                out.update(find_generators(root / sub))
        return out
    return find_generators(root)


def fold_plan(labels: np.ndarray, folds: int, seed: int, kfold_below: Optional[int] = None,
              train_size: Optional[int] = None) -> list[np.ndarray]:
    """Held-out index sets: ``folds`` stratified folds, or, when both classes hold more than
    ``kfold_below`` and ``train_size`` images, one split keeping ``train_size`` per class."""
    n_min = min(int((labels == 0).sum()), int((labels == 1).sum()))
    if kfold_below is not None and train_size is not None and n_min > max(kfold_below, train_size):
        return [holdout_split(labels, train_size, seed)]
    if n_min < folds:
        raise DIFError(f"--folds {folds} needs at least {folds} images per class (have {n_min})")
    return stratified_folds(labels, folds, seed)


def cross_validate(gens: Mapping[str, Path], makers: Mapping[str, Callable[[int], Method]], *, folds: int, seed: int,
                   conditions: Sequence[str] = ("clean",), device: torch.device = torch.device("cpu"),
                   kfold_below: Optional[int] = None, train_size: Optional[int] = None, progress: bool = False,
                   world: World = World(), on_generator: Optional[Callable[[dict], None]] = None) -> dict:
    """{generator: {"n_real", "n_fake", "folds", "methods": {name: {"accuracy", "auc" per condition
    as "COND/accuracy" ..., "fit_s", "score_s_per_image", "per_fold"}}}}.

    ``makers[name](seed)`` returns a fresh, untrained method; fold k trains one with ``seed + k`` on
    the other folds and scores the held-out one at the method's own threshold. Under torchrun the
    generators are shared out among the processes and every process gets every result back.
    ``on_generator(results so far)`` is called on rank 0 without torchrun after each generator."""
    names = list(gens)
    results: dict = {}
    for g in [names[i] for i in world.shard(len(names))]:
        ds = find_labelled(gens[g])
        labels = np.array(ds.labels)
        plan = fold_plan(labels, folds, seed, kfold_below, train_size)
        per: dict[str, list] = {n: [] for n in makers}
        for k, held in enumerate(plan):
            train = np.setdiff1d(np.arange(len(labels)), held)
            for name, make in makers.items():
                m = make(seed + k)
                t0 = time.perf_counter()
                m.fit([ds.paths[i] for i in train], labels[train].tolist(), device=device, progress=progress)
                t_fit = time.perf_counter() - t0
                t0 = time.perf_counter()
                got = held_out_metrics({"m": m}, [ds.paths[i] for i in held], labels[held].tolist(), list(conditions))
                t_score = time.perf_counter() - t0
                extractor = getattr(getattr(m, "config", None), "extractor", None)  # DIF: what auto chose
                per[name].append({"metrics": got["m"], "fit_s": t_fit,
                                  "score_s_per_image": t_score / max(1, len(held)) / len(conditions),
                                  "extractor": extractor})
                clean = got["m"]["clean"]
                log.info("%s fold %d/%d %s: acc %.3f AUC %.3f (fit %.0f s%s)", g, k + 1, len(plan), name,
                         clean["accuracy"], clean["auc"], t_fit, f", {extractor}" if extractor else "")
        results[g] = {"n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()), "folds": len(plan),
                      "methods": {n: summarise(v, conditions) for n, v in per.items()}}
        if on_generator is not None and not world.distributed:
            on_generator(results)
    merged = {g: r for part in world.gather(results) for g, r in part.items()}
    return {g: merged[g] for g in names if g in merged}


def summarise(folds: list[dict], conditions: Sequence[str]) -> dict:
    """Means over folds of each condition's accuracy and AUC, the fit and scoring times; the folds
    themselves under ``per_fold``."""
    out: dict = {}
    for c in conditions:
        for k in ("accuracy", "auc"):
            v = [f["metrics"][c][k] for f in folds if c in f["metrics"]]
            out[f"{c}/{k}"] = float(np.mean(v)) if v else float("nan")
            if k == "accuracy":
                out[f"{c}/accuracy_std"] = float(np.std(v)) if v else float("nan")
    out["fit_s"] = float(np.mean([f["fit_s"] for f in folds]))
    out["score_s_per_image"] = float(np.mean([f["score_s_per_image"] for f in folds]))
    out["per_fold"] = folds
    return out


def paper_table_text(results: dict, method: str, conditions: Sequence[str], heading: str) -> str:
    """The paper's rows (its accuracy beside ours; generators the data lacks marked missing), then
    any other generator, and a table per perturbation when there are any."""
    names = {f: n for f, n, _ in PAPER}
    rows = [(f, n, a) for f, n, a in PAPER] + [(g, g, None) for g in results if g not in names]
    lines = [heading, f"{'Generator':<13}{'Paper':>7}{'Ours':>8}{'AUC':>8}"]
    for f, n, a in rows:
        paper = f"{a:.1f}" if a is not None else "-"
        r = results.get(f)
        if r is None:
            lines.append(f"{n:<13}{paper:>7}{'missing':>8}")
            continue
        m = r["methods"][method]
        lines.append(f"{n:<13}{paper:>7}{100 * m['clean/accuracy']:>8.1f}{m['clean/auc']:>8.3f}")
    if len(conditions) > 1:
        lines += ["", "Accuracy % / AUC under perturbations (both classes of the held-out images)",
                  f"{'Generator':<13}" + "".join(f"{c:>16}" for c in conditions)]
        for g, r in results.items():
            m = r["methods"][method]
            lines.append(f"{g:<13}" + "".join(f"{100 * m[f'{c}/accuracy']:>9.1f} / {m[f'{c}/auc']:.3f}"
                                              for c in conditions))
    return "\n".join(lines)


def comparison_table_text(results: dict, methods: Sequence[str], folds: int, seed: int) -> str:
    """Markdown: held-out accuracy / AUC (fit seconds) per generator and method, and the means."""
    lines = [f"Held-out accuracy / AUC, {folds}-fold, same folds for every method (seed {seed}); fit time per fold",
             "", "| generator | n | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for g, r in results.items():
        cells = [f"{r['methods'][n]['clean/accuracy']:.3f} / {r['methods'][n]['clean/auc']:.3f} "
                 f"({r['methods'][n]['fit_s']:.0f} s)" for n in methods]
        lines.append(f"| {g} | {r['n_real']}+{r['n_fake']} | " + " | ".join(cells) + " |")
    means = [f"{np.mean([r['methods'][n]['clean/accuracy'] for r in results.values()]):.3f} / "
             f"{np.mean([r['methods'][n]['clean/auc'] for r in results.values()]):.3f}" for n in methods]
    lines.append("| **mean** | | " + " | ".join(f"**{c}**" for c in means) + " |")
    return "\n".join(lines)


def _progress_writer(out: Path, record: dict) -> Callable[[dict], None]:
    """Writes results.json with the generators done so far (one process only), so that a stopped
    run keeps them."""
    from ..atomic import write_text_atomic

    def write(results: dict) -> None:
        write_text_atomic(out / "results.json", json.dumps(dict(record, generators=results), indent=1) + "\n")
    return write


def run_paper_table(args) -> int:
    """``benchmarks/paper_table.py``: one DIF fingerprint per fold and generator, the paper's table."""
    from dataclasses import replace

    from ..atomic import check_output_dir, write_text_atomic
    from ..cli import resolve_device
    from ..config import DIFConfig, config_from_args
    from ..distributed import close_world, init_world
    from ..extractors import DEFAULT_EXTRACTOR
    from ..methods import get_method
    from ..robustness import parse_perturbations
    from .common import select

    cfg = config_from_args(DIFConfig, args, extractor=args.extractor or DEFAULT_EXTRACTOR,
                           checkpoint_every=args.epochs).validate()
    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    gens = select(find_generators(args.data_root), args.only, "--only")
    check_output_dir(args.out, "--out")
    world, device = init_world(resolve_device(args.device))
    record = {"config": cfg.to_dict(), "folds": args.folds, "kfold_below": args.kfold_below, "conditions": conditions}
    t0 = time.perf_counter()
    results = cross_validate(gens, {"DIF": lambda seed: get_method("dif").build(replace(cfg, seed=seed))},
                             folds=args.folds, seed=cfg.seed, conditions=conditions, device=device,
                             kfold_below=args.kfold_below, train_size=cfg.train_size, progress=not args.quiet,
                             world=world, on_generator=_progress_writer(args.out, record))
    close_world(world)
    if not world.is_main:
        return 0
    record.update(generators=results, processes=world.size, seconds=round(time.perf_counter() - t0, 1))
    heading = (f"Accuracy % ({args.folds}-fold where a class has <= {args.kfold_below} images; {cfg.epochs} epochs; "
               f"{cfg.extractor}; augment {cfg.augment}; loss {cfg.loss})")
    text = paper_table_text(results, "DIF", conditions, heading)
    print(text)
    write_text_atomic(args.out / "table.txt", text + "\n")
    write_text_atomic(args.out / "results.json", json.dumps(record, indent=1) + "\n")
    print(f"\n{record['seconds']} s; results in {args.out}")
    return 0


def run_compare_methods(args) -> int:
    """``benchmarks/compare_methods.py``: DIF and DeepFeatureX on the same folds."""
    from ..atomic import check_output_dir, write_text_atomic
    from ..choose import parse_auto
    from ..cli import resolve_device
    from ..config import DIFConfig
    from ..deepfeaturex.models import imagenet_weights_file
    from ..deepfeaturex.train import DFXConfig
    from ..distributed import close_world, init_world
    from ..extractors import build_extractor
    from ..methods import get_method
    from ..robustness import parse_perturbations
    from .common import need_shared_data, select

    if parse_auto(args.dif_extractor) is None:
        build_extractor(args.dif_extractor)  # a bad spec before any work
    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    root = args.data_root or need_shared_data()
    gens = select(generators(root), args.only, "--only")
    check_output_dir(args.out, "--out")
    world, device = init_world(resolve_device(args.device))
    makers = {"DIF": lambda seed: get_method("dif").build(DIFConfig(seed=seed, epochs=args.dif_epochs,
                                                                    extractor=args.dif_extractor)),
              "DFX resnet18 scratch": lambda seed: get_method("deepfeaturex").build(
                  DFXConfig(seed=seed, epochs=args.dfx_epochs, pretrained="none"))}
    _, path = imagenet_weights_file("resnet18")
    if path.is_file():
        makers["DFX resnet18 ImageNet"] = lambda seed: get_method("deepfeaturex").build(
            DFXConfig(seed=seed, epochs=args.dfx_epochs, pretrained="imagenet"))
    else:
        print(f"note: ImageNet resnet18 weights not in the cache ({path}); that variant is not run")
    makers = select(makers, args.methods, "--methods", "methods")
    record = {"folds": args.folds, "seed": args.seed, "device": str(device), "conditions": conditions}
    t0 = time.perf_counter()
    results = cross_validate(gens, makers, folds=args.folds, seed=args.seed, conditions=conditions, device=device,
                             progress=not args.quiet, world=world, on_generator=_progress_writer(args.out, record))
    close_world(world)
    if not world.is_main:
        return 0
    record.update(generators=results, processes=world.size, seconds=round(time.perf_counter() - t0, 1))
    text = comparison_table_text(results, list(makers), args.folds, args.seed)
    print(text)
    write_text_atomic(args.out / "table.md", text + "\n")
    write_text_atomic(args.out / "results.json", json.dumps(record, indent=1) + "\n")
    return 0
