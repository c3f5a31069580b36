#!/usr/bin/env python3
"""Lineage: the decision's rates over replicates of generators trained here, and the authors'
released fingerprints.

    python benchmarks/lineage.py sweep --out OUT [--seeds 0,1,2,3] [--steps 800] [--finetune 25,100,300]
    python benchmarks/lineage.py sweep --out OUT --seeds 0          (one replicate: the AUC table alone)
    python benchmarks/lineage.py official [--json OUT] [--figure PNG]
    python benchmarks/lineage.py released [--extractors dncnn,wavelet,highpass] [--json OUT] [--card MD]

sweep: parents (two architectures) and strangers trained per seed on crops of ../shared/data, the
parents fine-tuned on new photos, a DIF fingerprint per parent; every (parent, candidate) pair
decided against a pool of other replicates' models (dif/experiments/lineage.py has the design).
official: the decision with each released fingerprint on each shared model's images. released:
each released fingerprint on its own generator's samples, per residual extractor.
"""
from __future__ import annotations

import sys


def get_args_parser():
    from pathlib import Path

    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="the decision's rates over replicates of generators trained here")
    s.add_argument("--out", type=Path, required=True, help="output folder (an earlier run needs --overwrite)")
    s.add_argument("--seeds", default="0,1,2,3", help="replicates; at least 3 for the decision (1: the AUC table)")
    s.add_argument("--size", type=int, default=32, choices=[32, 64], help="image size")
    s.add_argument("--steps", type=int_in(1, 10**7), default=800, help="training steps of the base models")
    s.add_argument("--finetune", default="25,100,300", help="fine-tuning depths of the children (steps)")
    s.add_argument("--child-data", choices=["bsd68+live1", "bsd68"], default="bsd68+live1",
                   help="what the children are fine-tuned on")
    s.add_argument("--crops", type=int_in(64, 10**7), default=4000, help="training crops per data set")
    s.add_argument("--images", type=int_in(4, 10**5), default=64,
                   help="images per class of each fingerprint, and new images per model to test")
    s.add_argument("--epochs", type=int_in(1, 10**5), default=20, help="DIF training epochs")
    s.add_argument("--extractor", default="dncnn")
    s.add_argument("--alpha", type=float, default=0.05)
    s.add_argument("--perturb", default="jpeg90", help="conditions besides clean ('' for none)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--figures", type=Path, default=None, help="also copy the figure here (e.g. repo_images/)")
    o = sub.add_parser("official", help="the decision on the authors' released fingerprints")
    o.add_argument("--json", type=Path, default=None, help="every statistic and p-value")
    o.add_argument("--figure", type=Path, default=None, help="the p-value heatmaps (PNG)")
    o.add_argument("--alpha", type=float, default=0.05)
    o.add_argument("--images", type=int_in(1, 10**6), default=None, help="at most this many images per model")
    r = sub.add_parser("released", help="the released fingerprints on their own samples, per extractor")
    r.add_argument("--extractors", default="dncnn,wavelet,wavelet-dwt,highpass,highpass:0.7")
    r.add_argument("--json", type=Path, default=None)
    r.add_argument("--bootstrap", type=int_in(0, 10**6), default=2000, help="resamples for the intervals")
    r.add_argument("--card", type=Path, default=None, help="model card whose detection section is rewritten")
    return p


def main(argv=None) -> int:
    from dif.cli import setup_logging

    args = get_args_parser().parse_args(argv)
    setup_logging()
    from dif.experiments import lineage

    run = {"sweep": lineage.run_sweep, "official": lineage.run_official, "released": lineage.run_released_detection}
    return run[args.command](args)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
