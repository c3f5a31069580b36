"""Training recipes compared on held-out images (``benchmarks/recipes.py``): each recipe is a set of
``train_dif.py`` options; every recipe trains a fingerprint on DATA/train per seed and is scored on
DATA/test, clean and after each perturbation (applied to both classes of the test images), with
one residual pass per condition for all recipes. Also the lossless large-image set that several
pages measure on (``make_large_set``)."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
import shlex
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import RunFolder, check_output_file, write_text_atomic
from ..config import DIFConfig, add_config_arguments, config_from_args
from ..data import list_images, load_image
from ..errors import DIFError
from ..extractors import build_extractor
from ..generators import random_crops, train_image_autoencoder
from ..methods import get_method
from ..robustness import parse_perturbations
from .common import held_out_metrics, need_shared_data, train_test_sets

NAMED = {"default": "", "clean": "--augment 0", "paper": "--augment 0 --loss paper --tiles 1", "centre": "--tiles 1"}


class _OptionParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise DIFError(f"--recipe: {message}")


def parse_recipes(items: list[str], base: str) -> dict[str, DIFConfig]:
    """{name: config} from ``NAME=OPTIONS`` items (train_dif.py's options; ``base`` first) or the
    names of ``NAMED``; DIFError in one line for a bad one."""
    parser = _OptionParser(add_help=False)
    add_config_arguments(parser, DIFConfig)
    parser.add_argument("--extractor", default="dncnn")
    out = {}
    for item in items or ["default", "clean"]:
        name, eq, options = item.partition("=")
        if not eq:
            if name not in NAMED:
                raise DIFError(f"--recipe {item!r}: give NAME=OPTIONS or one of {', '.join(NAMED)}")
            options = NAMED[name]
        try:
            args = parser.parse_args(shlex.split(base) + shlex.split(options))
            out[name.strip()] = config_from_args(DIFConfig, args).validate()
        except DIFError as exc:
            raise DIFError(f"--recipe {item!r}: {str(exc).removeprefix('--recipe: ')}") from None
    return out


def run_compare(args) -> int:
    """Every recipe, data set and seed: held-out accuracy / AUC per condition, and the means."""
    check_output_file(args.out, "--out")
    check_output_file(args.figure, "--figure")
    base = f"--extractor {shlex.quote(args.extractor)} --epochs {args.epochs} --crop {args.crop} --checkpoint-every {args.epochs}"
    recipes = parse_recipes(args.recipe, base)
    conds = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    build_extractor(args.extractor)  # a bad --extractor now, not after the first set's residuals
    sets = train_test_sets(args.data)
    results: dict = {"recipes": {k: v.to_dict() for k, v in recipes.items()}, "conditions": conds, "runs": []}
    t0 = time.perf_counter()
    for d, (train, test) in sets.items():
        for seed in range(args.seeds):
            methods, rows = {}, {}
            for name, cfg in recipes.items():
                t = time.perf_counter()
                methods[name] = get_method("dif").build(replace(cfg, seed=seed))
                methods[name].fit(list(train.paths), list(train.labels), device=torch.device("cpu"))
                rows[name] = {"data": str(d), "recipe": name, "seed": seed,
                              "train_seconds": round(time.perf_counter() - t, 1)}
            for name, got in held_out_metrics(methods, test.paths, test.labels, conds).items():
                rows[name].update(got)
            for name, row in rows.items():
                results["runs"].append(row)
                print(f"{d.name} {name} seed {seed} ({row['train_seconds']:.0f} s): "
                      + "; ".join(f"{c} {row[c]['accuracy']:.3f}/{row[c]['auc']:.3f}" for c in conds), flush=True)
            write_text_atomic(args.out, json.dumps(results, indent=1) + "\n")  # a snapshot after every seed
    table = {}
    for d in sets:
        for name in recipes:
            rows = [r for r in results["runs"] if r["data"] == str(d) and r["recipe"] == name]
            table[f"{d.name}/{name}"] = {c: {k: round(float(np.mean([r[c][k] for r in rows])), 4)
                                             for k in ("accuracy", "auc")} for c in conds}
    results.update(mean=table, seconds=round(time.perf_counter() - t0, 1))
    write_text_atomic(args.out, json.dumps(results, indent=1) + "\n")
    if args.figure is not None:
        recipe_figure(table, [d.name for d in sets], list(recipes), conds, args.figure)
    print("| data / recipe | " + " | ".join(conds) + " |")
    print("|---" * (len(conds) + 1) + "|")
    for k, v in table.items():
        print(f"| {k} | " + " | ".join(f"{v[c]['accuracy']:.3f} / {v[c]['auc']:.3f}" for c in conds) + " |")
    return 0


def recipe_figure(table: dict, sets: list[str], recipes: list[str], conds: list[str], path: Path) -> None:
    """One panel per data set: each condition's mean held-out accuracy (solid) and AUC (dashed)
    against the recipes in the order given, so that recipes that step one option (``--train-size
    5``, ``10``, ``20``) draw its curve."""
    from ..plots import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets) + 1.5, 3.4), squeeze=False)
    x = np.arange(len(recipes))
    for ax, d in zip(axes[0], sets):
        for i, c in enumerate(conds):
            colour = f"C{i}"
            ax.plot(x, [table[f"{d}/{r}"][c]["accuracy"] for r in recipes], "o-", color=colour, label=f"{c} accuracy")
            ax.plot(x, [table[f"{d}/{r}"][c]["auc"] for r in recipes], "s--", color=colour, alpha=0.6, label=f"{c} AUC")
        ax.set_xticks(x, recipes, fontsize=8)
        ax.set_ylim(0.0, 1.02)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_title(d, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def run_lossless_set(args) -> int:
    """``make_large_set`` into ``args.out``, written whole or not at all."""
    shared = need_shared_data()
    t0 = time.perf_counter()
    with RunFolder(args.out, args.overwrite, lambda n: n in ("train", "test", "set.json"), what="OUT") as run:
        record = make_large_set(run.tmp, shared, args.ae_steps, args.seed, args.ae_ups)
        write_text_atomic(run.tmp / "set.json", json.dumps(record, indent=1) + "\n")
        run.commit()
    print(f"made the lossless set in {time.perf_counter() - t0:.0f} s: {record['counts']}; wrote {args.out}")
    return 0


def make_large_set(out: Path, shared: Path, ae_steps: int, seed: int, ups: int = 2) -> dict:
    """The lossless large-image set in out/{train,test}/{0_real,1_fake}: the colour LIVE1 photos (29,
    about 768 x 512) and the grey BSD68 photos (68, 481 x 321) of ``shared``/natural, each used once,
    as itself (real) or passed whole through a fully convolutional autoencoder trained for
    ``ae_steps`` on 64 px crops of train400, which none of these photos is (fake; ``ups``
    up-samplings, a trace of period 2^ups px); fakes of grey photos are made grey again. Photos are
    assigned to train / test and real / fake at random within each source."""
    nat = shared / "natural"
    crops = random_crops([load_image(p) for p in list_images(nat / "train400")], 64, 2000, seed)
    net, losses = train_image_autoencoder(crops, ae_steps, seed=seed, ups=ups)
    rng = np.random.default_rng(seed)
    grid = 2 ** ups
    counts: dict = {}
    for source in ("live1", "bsd68"):
        photos = list_images(nat / source)
        order = rng.permutation(len(photos))
        for rank, i in enumerate(order):
            split, cls = ("train", "test")[rank % 2], ("0_real", "1_fake")[(rank // 2) % 2]
            img = load_image(photos[i])
            h, w = img.shape[-2] // grid * grid, img.shape[-1] // grid * grid  # the autoencoder's grid
            img = img[:, :h, :w]
            if cls == "1_fake":
                with torch.no_grad():
                    img = net(img.unsqueeze(0))[0]
                if source == "bsd68":
                    img = img.mean(0, keepdim=True).expand(3, -1, -1)
            arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            dst = out / split / cls / f"{source}_{photos[i].stem}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(dst)
            counts[f"{split}/{cls}"] = counts.get(f"{split}/{cls}", 0) + 1
    return {"ae_steps": ae_steps, "ae_ups": ups, "ae_l1_last50": float(np.mean(losses[-50:])), "counts": counts,
            "seed": seed}


