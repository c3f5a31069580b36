#!/usr/bin/env python3
"""Memory and many processes of eval_dif.py.

    python benchmarks/memory.py streaming [--sizes 100,1000,5000] [--workdir DIR] [--compare]
    python benchmarks/memory.py processes [--images 1000] [--procs 1,2] [--extractors highpass,wavelet-dwt]

streaming: the peak memory of one evaluation per number of images, each in a fresh process
(--compare: also the pipeline that keeps every residual). processes: images per second on 1 and
N processes under torchrun, each rank's peak memory, and whether the CSVs are identical.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("streaming", help="peak memory against the number of images")
    s.add_argument("--sizes", default="100,1000,5000", help="comma-separated numbers of images (even, >= 2)")
    s.add_argument("--workdir", type=Path, default=None, help="keep the generated images here (default: a temp folder)")
    s.add_argument("--compare", action="store_true", help="also measure the keep-every-residual pipeline")
    s = sub.add_parser("processes", help="images per second and memory on 1 and N processes")
    s.add_argument("--images", type=int_in(2, 1_000_000), default=1000)
    s.add_argument("--procs", default="1,2", help="comma-separated process counts")
    s.add_argument("--extractors", default="highpass,wavelet-dwt")
    s.add_argument("--workdir", type=Path, default=Path("/tmp/dif_eval_bench"))
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments import memory

    return memory.run_streaming(args) if args.command == "streaming" else memory.run_processes(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
