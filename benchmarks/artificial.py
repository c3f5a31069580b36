#!/usr/bin/env python3
"""Artificial fingerprints: quality and robustness of a pair, and the transfer to a generator.

    python benchmarks/artificial.py quality [--check dif/weights/artificial ...] [--photos DIR ...] [--whole]
        [--figure PNG] [--example PNG] [--psnr DB] [--json OUT]
    python benchmarks/artificial.py transfer [--check DIR] [--size 128] [--steps 3000] [--training gan|ae]
        [--samples-dir DIR [--reread]] [--models fingerprinted clean] [--json OUT]

quality: bit accuracy, PSNR / SSIM, bit accuracy under the paper's perturbations and attribution
among 1,000 users on held-out photos (default: LIVE1 of ../shared/data). transfer: a generator
trained on fingerprinted crops of train400 against its twin trained on the clean crops.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.artificial.weights import DEFAULT_PAIR
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="quality, robustness and attribution on held-out photos")
    q.add_argument("--check", type=Path, nargs="+", default=[DEFAULT_PAIR],
                   help="folder(s) with encoder.pth, decoder.pth (several: compared in the figure)")
    q.add_argument("--figure", type=Path, default=None, help="bit accuracy under each perturbation, one line per pair")
    q.add_argument("--example", type=Path, default=None,
                   help="a whole-photo pair: the first photo beside its original at 100%% zoom, and the difference (PNG)")
    q.add_argument("--psnr", type=float, default=None, help="a whole-photo pair's strength in dB (default: its own)")
    q.add_argument("--photos", type=Path, nargs="+", default=None,
                   help="folder(s) of held-out photos (default: ../shared/data/natural/live1)")
    q.add_argument("--whole", action="store_true", help="each photo whole, as the embed and detect commands see it")
    q.add_argument("--per-image", type=int_in(1, 1000), default=8, help="seeded windows per photo (without --whole)")
    q.add_argument("--users", type=int_in(1, 10**6), default=1000)
    q.add_argument("--seed", type=int_in(0, 2**31), default=0)
    q.add_argument("--json", type=Path, default=None)
    t = sub.add_parser("transfer", help="does the fingerprint carry over to a generator's samples?")
    t.add_argument("--check", type=Path, default=DEFAULT_PAIR, help="folder with encoder.pth + decoder.pth")
    t.add_argument("--size", type=int_in(8, 128), default=None,
                   help="crop and generator size (default: the pair's resolution; any power of 2 for a whole-photo pair)")
    t.add_argument("--samples-dir", type=Path, default=None, help="save each generator's samples here as PNG")
    t.add_argument("--reread", action="store_true", help="read the samples saved in --samples-dir instead of training")
    t.add_argument("--models", nargs="+", choices=["fingerprinted", "clean"], default=["fingerprinted", "clean"],
                   help="which generators (default both; e.g. one per process with --samples-dir, then --reread)")
    t.add_argument("--steps", type=int_in(1, 10**7), default=3000)
    t.add_argument("--batch", type=int_in(1, 4096), default=64, help="the generator's batch size")
    t.add_argument("--crops", type=int_in(64, 10**7), default=4000, help="training crops")
    t.add_argument("--samples", type=int_in(1, 10**6), default=500, help="samples per generator (--reread: the first N saved)")
    t.add_argument("--training", choices=["gan", "ae"], default="gan")
    t.add_argument("--arch", choices=["dcgan", "upconv"], default="dcgan")
    t.add_argument("--seed", type=int_in(0, 2**31), default=0)
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--json", type=Path, default=None, help="write the results here")
    t.add_argument("--figures", type=Path, default=Path("repo_images"), help="sample grids go here")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from dif.experiments import artificial

    return artificial.run_quality(args) if args.command == "quality" else artificial.run_transfer(args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
