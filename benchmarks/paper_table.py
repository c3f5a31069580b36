#!/usr/bin/env python3
"""The DIF paper's accuracy table, reproduced on a data root of generator folders.

    python benchmarks/paper_table.py DATA_ROOT [--folds 4] [--perturb all] [--out results/table]
        [any train_dif.py option: --epochs 100 --extractor dncnn --loss paper ...]

For each DATA_ROOT/<generator>/{0_real,1_fake}: a DIF fingerprint per fold, trained through the
method registry (``get_method("dif").fit``, as train_dif.py does) on the other folds, scored on the
held-out fold, clean and after each --perturb. K-fold when a class has at most --kfold-below
images, else one split keeping --train-size images per class for training. The training defaults
are the paper's recipe (no perturbed copies, the paper's loss, the centre crop, the DnCNN); every
train_dif.py option overrides them. Under ``torchrun --nproc_per_node N`` the generators are shared
out among the processes. Writes table.txt and results.json to --out.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, add_common_arguments, int_in
    from dif.config import DIFConfig, add_config_arguments
    from dif.extractors import DEFAULT_EXTRACTOR

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data_root", type=Path)
    p.add_argument("--folds", type=int_in(2, 1000), default=4)
    p.add_argument("--kfold-below", type=int_in(1), default=200, help="k-fold when a class has at most this many images")
    p.add_argument("--perturb", default="", help="perturbations to score too (eval_dif.py --perturb's names)")
    p.add_argument("--only", default="", help="comma-separated generator folders (default: all)")
    p.add_argument("--out", type=Path, default=Path("results/table"))
    add_config_arguments(p, DIFConfig, defaults=DIFConfig(augment=0, loss="paper", tiles=1),
                         exclude=("checkpoint_every", "calibrate", "folds"))
    add_common_arguments(p, extractor=f"residual extractor (default: {DEFAULT_EXTRACTOR})")
    return p


def main(argv=None) -> int:
    from dif.cli import setup_logging

    args = get_args_parser().parse_args(argv)
    setup_logging()
    from dif.experiments.folds import run_paper_table

    return run_paper_table(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
