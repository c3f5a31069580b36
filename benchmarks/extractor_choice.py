#!/usr/bin/env python3
"""Does ``--extractor auto`` beat a fixed extractor on data the choice did not see?

    python benchmarks/extractor_choice.py ROOT [ROOT ...] [--folds 2] [--epochs 30] [--crop 256]
        [--extractors highpass,wavelet-dwt,wavelet,dncnn,auto] [--augment 2] [--perturb jpeg90]
        [--auto-candidates highpass,...,dncnn-jpeg] [--auto-perturb jpeg90,jpeg75,resize0.5,crop] [--json OUT]

For every generator folder of each ROOT and every outer fold: a fingerprint per fixed extractor
and per auto spec trained on the training part, scored on the held-out part (clean and after
--perturb); prints accuracy / AUC per generator and the means per root (dif/experiments/extractor_choice.py).
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.choose import CANDIDATES
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("roots", nargs="+", type=Path, help="data roots of generator folders")
    p.add_argument("--extractors", default=",".join(CANDIDATES) + ",auto",
                   help="comma-separated specs, auto specs (auto, auto:K[:E]) included")
    p.add_argument("--folds", type=int_in(2, 100), default=2)
    p.add_argument("--epochs", type=int_in(1, 10**5), default=30)
    p.add_argument("--crop", type=int_in(32, 8192), default=256)
    p.add_argument("--augment", type=int_in(0, 100), default=0)
    p.add_argument("--perturb", default="", help="also score the held-out images after these perturbations")
    p.add_argument("--auto-candidates", default=",".join(CANDIDATES),
                   help="what auto specs choose among (each must be in --extractors as well)")
    p.add_argument("--auto-perturb", default="",
                   help="auto specs also rank candidates on their held-out folds after these perturbations")
    p.add_argument("--seed", type=int_in(0, 2**31), default=0)
    p.add_argument("--only", default="", help="comma-separated generator folders")
    p.add_argument("--json", type=Path, default=None)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments.extractor_choice import run

    return run(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
