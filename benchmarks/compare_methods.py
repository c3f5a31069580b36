#!/usr/bin/env python3
"""DIF against DeepFeatureX under identical low-budget conditions: the same images, the same folds.

    python benchmarks/compare_methods.py [DATA_ROOT] [--folds 2] [--perturb jpeg90] [--out results/compare]

DATA_ROOT (default ../shared/data) is a folder of generator folders with 0_real/ and 1_fake/, or
the shared data itself (its cnndetection/* and dif_official/samples/* generators). Each method is
trained through the registry on the other folds with its own defaults (DIF: train_dif.py's) and
scored on the held-out fold at its own threshold: accuracy, ROC AUC, fit and scoring time.
Methods: DIF, DeepFeatureX with a resnet18 from scratch, and with torchvision's ImageNet resnet18
when its weights are in the torch hub cache. Under ``torchrun`` the generators are shared out.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.choose import TRAINING_DEFAULT
    from dif.cli import Parser, add_common_arguments, int_in

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data_root", nargs="?", type=Path, default=None)
    p.add_argument("--folds", type=int_in(2, 100), default=2)
    p.add_argument("--dif-epochs", type=int_in(1, 10_000), default=100)
    p.add_argument("--dif-extractor", default=TRAINING_DEFAULT, help="DIF's residual extractor (default: train_dif.py's)")
    p.add_argument("--dfx-epochs", type=int_in(1, 10_000), default=50)
    p.add_argument("--perturb", default="", help="perturbations to score too (eval_dif.py --perturb's names)")
    p.add_argument("--only", default="", help="comma-separated generators (default: all)")
    p.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    p.add_argument("--out", type=Path, default=Path("results/compare"))
    add_common_arguments(p, seed=True)
    return p


def main(argv=None) -> int:
    from dif.cli import setup_logging

    args = get_args_parser().parse_args(argv)
    setup_logging()
    from dif.experiments.folds import run_compare_methods

    return run_compare_methods(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
