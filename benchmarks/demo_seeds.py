#!/usr/bin/env python3
"""How much one demo set decides: the quick start's three commands over several seeds.

    python benchmarks/demo_seeds.py WORK --out OUT.json [--seeds 0,1,2]
        [--demo-args "--train 10"] [--train-args "--extractor auto"] [--perturb jpeg90,jpeg75]

For each seed S: ``python -m dif.demo WORK/sS --seed S``, ``python train_dif.py WORK/sS/train
WORK/sS_check`` and ``python eval_dif.py WORK/sS_check WORK/sS/test`` (with --perturb when given),
as subprocesses; records the test accuracy / AUC, the extractor used and each command's time. A
seed already in OUT.json with the same arguments is not run again; threads: OMP_NUM_THREADS.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("work", type=Path, help="scratch folder for the demo sets and fingerprints")
    p.add_argument("--out", type=Path, required=True, help="JSON of every seed's results")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated demo seeds")
    p.add_argument("--demo-args", default="", help="extra arguments of python -m dif.demo")
    p.add_argument("--train-args", default="", help="extra arguments of train_dif.py")
    p.add_argument("--perturb", default="", help="eval_dif.py --perturb (both classes of the test images)")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments.demo_seeds import run_seeds

    return run_seeds(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
