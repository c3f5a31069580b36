#!/usr/bin/env python3
"""Is there a fixed trace to find? The mean-difference fingerprint (no training) on held-out images.

    python benchmarks/trace_probe.py DATA [DATA ...] [--extractors highpass,wavelet-dwt] [--period 4]
        [--tiles 1] [--perturb resize0.5,jpeg75] [--out OUT.json]

DATA holds train/ and test/, each with 0_real/ and 1_fake/ (``python -m dif.demo`` makes one). The
test AUC of the mean fake minus mean real residual of DATA/train, per extractor, clean and with
each --perturb applied to train and test images (dif/experiments/trace.py says what it measures).
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="folders with train/ and test/")
    p.add_argument("--extractors", default="highpass,wavelet-dwt", help="comma-separated extractor specs")
    p.add_argument("--crop", type=int_in(16, 8192), default=256)
    p.add_argument("--tiles", type=int_in(0, 4096), default=1,
                   help="crop-sized tiles per image (0 = every tile, as DIF's default; 1 = the centre crop)")
    p.add_argument("--period", type=int_in(2, 64), default=4, help="period in px of the trace whose power is compared")
    p.add_argument("--perturb", default="", help="also each of these perturbations (eval_dif.py --perturb's names)")
    p.add_argument("--out", type=Path, default=None, help="JSON of every result")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments.trace import run

    return run(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
