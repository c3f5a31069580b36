#!/usr/bin/env python3
"""Training recipes compared on held-out images, and the lossless large-image set.

    python benchmarks/recipes.py compare DATA [DATA ...] --out OUT.json [--recipe NAME=OPTIONS ...]
        [--extractor dncnn] [--epochs 100] [--crop 256] [--seeds 1] [--perturb jpeg90,jpeg75,resize0.5,crop]
        [--figure OUT.png]
    python benchmarks/recipes.py lossless-set OUT [--ae-ups 2] [--ae-steps 800] [--seed 0]

compare: DATA holds train/ and test/, each with 0_real/ and 1_fake/ (``python -m dif.demo`` makes
one). A recipe is NAME=OPTIONS, any train_dif.py options (e.g. ``tiles1="--tiles 1"``,
``paper="--augment 0 --loss paper"``), or one of default, clean (--augment 0), paper, centre
(--tiles 1); default: default and clean. lossless-set: LIVE1 and BSD68 photos, real as they are or
passed whole through an autoencoder trained here (a period-2^N trace), in OUT/{train,test}.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="held-out accuracy / AUC of each recipe")
    c.add_argument("data", nargs="+", type=Path, help="folders with train/ and test/")
    c.add_argument("--out", type=Path, required=True, help="JSON of every result")
    c.add_argument("--recipe", action="append", default=[], help="NAME=OPTIONS (train_dif.py's), repeatable")
    c.add_argument("--extractor", default="dncnn", help="every recipe's extractor, unless it names one")
    c.add_argument("--epochs", type=int_in(1, 10**5), default=100)
    c.add_argument("--crop", type=int_in(32, 8192), default=256)
    c.add_argument("--seeds", type=int_in(1, 100), default=1)
    c.add_argument("--perturb", default="jpeg90,jpeg75,resize0.5,crop")
    c.add_argument("--figure", type=Path, default=None,
                   help="accuracy and AUC per recipe, in the order given (e.g. a curve over --train-size)")
    s = sub.add_parser("lossless-set", help="make the lossless large-image set")
    s.add_argument("out", type=Path)
    s.add_argument("--ae-steps", type=int_in(1, 10**6), default=800)
    s.add_argument("--ae-ups", type=int_in(1, 4), default=2, help="the autoencoder's up-samplings (period 2^N px)")
    s.add_argument("--seed", type=int_in(0, 2**31), default=0)
    s.add_argument("--overwrite", action="store_true")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments import recipes

    return recipes.run_compare(args) if args.command == "compare" else recipes.run_lossless_set(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
