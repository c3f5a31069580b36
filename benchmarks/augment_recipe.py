#!/usr/bin/env python3
"""Which perturbed copies should DIF train on? Accuracy / AUC of held-out images, clean and perturbed,
for fingerprints trained with each augmentation recipe on the same images.

    python benchmarks/augment_recipe.py DATA [DATA ...] --out OUT.json
        [--recipes none,legacy,grid] [--losses ranking,paper] [--ema-start zero] [--denoiser dncnn] [--seeds 1]
        [--perturb jpeg90,jpeg75,resize0.5,crop]

DATA holds train/ and test/, each with 0_real/ and 1_fake/ (``python -m dif.demo`` makes one;
``benchmarks/tiles.py`` makes the lossless large-image set). A recipe is NAME=AUGMENT:KINDS, or one
of the named ones: ``none`` (0 copies, the paper), ``legacy`` (2 copies of
jpeg,resize,blur,shift,rotate from the first epoch: the default before this benchmark), ``grid`` (2
copies of jpeg,blur,noise: perturbations that keep a generator's periodic trace on its grid),
``warm`` (legacy's copies after 30% of the epochs on the clean images alone, ``--clean-first 0.3``).
NAME=N:KINDS:F sets the clean warm-up F. Everything else
is ``train_dif.py``'s default (crop 256, every tile, 100 epochs) except the extractor, fixed by
``--denoiser`` so that the recipes alone differ. ``--losses`` trains each recipe with each pairwise
loss named (``train_dif.py --loss``; results named RECIPE/LOSS when there are several), and
``--ema-start`` is ``train_dif.py``'s (``first`` reproduces tables made before it). Each (data, recipe, seed) trains one fingerprint;
the held-out images are scored with its own centres, clean and after each ``--perturb`` (applied to
both classes of the test images only; one residual pass per condition serves every recipe). Prints one line per fingerprint and a mean table.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

NAMED = {"none": "0:jpeg", "legacy": "2:jpeg,resize,blur,shift,rotate:0", "grid": "2:jpeg,blur,noise:0",
         "warm": "2:jpeg,resize,blur,shift,rotate:0.3"}


def parse_recipes(spec: str) -> dict[str, tuple[int, str, float]]:
    """{name: (augment, kinds, clean_first)} from ``none,legacy,grid,warm`` or ``NAME=N:KINDS[:F]``
    items (DIFError if bad)."""
    from dif.errors import DIFError
    from dif.robustness import parse_augment_kinds

    out = {}
    for item in [s.strip() for s in spec.split(";" if "=" in spec else ",") if s.strip()]:
        name, _, body = item.partition("=")
        body = body or NAMED.get(name, "")
        n, _, rest = body.partition(":")
        kinds, _, first = rest.partition(":")
        try:
            count, warm = int(n), float(first or 0)
        except ValueError:
            raise DIFError(f"--recipes: {item!r} is neither {', '.join(NAMED)} nor NAME=N:KINDS[:F]") from None
        if not 0 <= count <= 100:
            raise DIFError(f"--recipes: {item!r}: the number of copies must be 0-100")
        if not 0 <= warm <= 1:
            raise DIFError(f"--recipes: {item!r}: the clean warm-up F must be 0-1")
        out[name] = (count, ",".join(parse_augment_kinds(kinds or "jpeg")), warm)
    if not out:
        raise DIFError("--recipes: no recipe named")
    return out


def with_losses(recipes: dict[str, tuple[int, str, float]], spec: str) -> dict[str, tuple[int, str, float, str]]:
    """Each recipe once per loss named in ``spec`` (``RECIPE/LOSS`` when there are several; DIFError
    for a name that is not a loss)."""
    from dif.errors import DIFError
    from dif.fingerprint import LOSSES

    losses = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in losses if s not in LOSSES]
    if bad or not losses:
        raise DIFError(f"--losses {spec}: not a loss: {', '.join(bad) or '(none named)'} (known: {', '.join(LOSSES)})")
    return {(f"{name}/{loss}" if len(losses) > 1 else name): (*r, loss) for name, r in recipes.items() for loss in losses}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from dif.atomic import check_output_file, write_text_atomic
    from dif.cli import Parser, int_in
    from dif.config import DIFConfig
    from dif.data import find_labelled
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.methods.dif import DIFMethod
    from dif.robustness import parse_perturbations

    from _common import held_out_metrics

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="folders with train/ and test/")
    p.add_argument("--out", type=Path, required=True, help="JSON of every result")
    p.add_argument("--recipes", default="none,legacy,grid,warm")
    p.add_argument("--losses", default=DIFConfig().loss, help="comma-separated from ranking,paper (train_dif.py --loss; "
                   "default: its default)")
    ema_field = next(f for f in dataclasses.fields(DIFConfig) if f.name == "ema_start")
    p.add_argument("--ema-start", choices=ema_field.metadata["choices"], default=ema_field.default,
                   help="train_dif.py --ema-start for every fingerprint (default: its default)")
    p.add_argument("--denoiser", default="dncnn")
    p.add_argument("--seeds", type=int_in(1, 100), default=1)
    p.add_argument("--epochs", type=int_in(1, 10**5), default=100)
    p.add_argument("--crop", type=int_in(32, 8192), default=256)
    p.add_argument("--perturb", default="jpeg90,jpeg75,resize0.5,crop")
    p.add_argument("--threads", type=int_in(1, 256), default=None)
    p.add_argument("--train-precision", choices=("fp32", "bf16"), default="fp32", help="every recipe's U-Net arithmetic")
    args = p.parse_args(argv)
    check_output_file(args.out, "--out")
    recipes = with_losses(parse_recipes(args.recipes), args.losses)
    conds = ["clean"] + (parse_perturbations(args.perturb) if args.perturb else [])
    build_extractor(args.denoiser)  # a bad --denoiser now, not after the first set's residuals
    sets = {}
    for d in args.data:
        if not (d / "train").is_dir() or not (d / "test").is_dir():
            raise DIFError(f"{d}: needs train/ and test/, each with 0_real/ and 1_fake/")
        sets[d] = (find_labelled(d / "train"), find_labelled(d / "test"))
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"recipes": {k: {"augment": a, "kinds": s, "clean_first": f, "loss": loss}
                                 for k, (a, s, f, loss) in recipes.items()},
                     "ema_start": args.ema_start, "denoiser": args.denoiser, "train_precision": args.train_precision, "epochs": args.epochs, "crop": args.crop, "conditions": conds,
                     "runs": []}
    t0 = time.perf_counter()
    for d, (train, test) in sets.items():
        for seed in range(args.seeds):
            methods, rows = {}, {}
            for name, (augment, kinds, warm, loss) in recipes.items():
                t = time.perf_counter()
                cfg = DIFConfig(epochs=args.epochs, crop=args.crop, augment=augment, augment_kinds=kinds, seed=seed,
                                extractor=args.denoiser, checkpoint_every=args.epochs, clean_first=warm, loss=loss,
                                ema_start=args.ema_start, train_precision=args.train_precision).validate()
                methods[name] = DIFMethod.build(cfg)
                methods[name].fit(list(train.paths), list(train.labels), device=torch.device("cpu"))
                rows[name] = {"data": str(d), "recipe": name, "seed": seed,
                              "train_seconds": round(time.perf_counter() - t, 1)}
            for name, got in held_out_metrics(methods, test.paths, test.labels, conds).items():
                rows[name].update(got)  # every recipe's fingerprint scored on one residual pass per condition
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
    results["mean"] = table
    results["seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(args.out, json.dumps(results, indent=1) + "\n")
    print("| data / recipe | " + " | ".join(conds) + " |")
    print("|---" * (len(conds) + 1) + "|")
    for k, v in table.items():
        print(f"| {k} | " + " | ".join(f"{v[c]['accuracy']:.3f} / {v[c]['auc']:.3f}" for c in conds) + " |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
