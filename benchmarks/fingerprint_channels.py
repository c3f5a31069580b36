#!/usr/bin/env python3
"""Which colour channels of a trained fingerprint carry what transfers: the test AUC per channel.

    python benchmarks/fingerprint_channels.py CHECK_DIR DATA [--train TRAIN_DIR] [--epoch E] [--out OUT.json]

CHECK_DIR is what ``train_dif.py`` wrote; DATA holds ``0_real/`` and ``1_fake/`` (held-out
images: ``DIR/test`` of ``python -m dif.demo``). Every image is centre-cropped and passed through
the check's own extractor, once. Printed for DATA (and for ``--train``, the images the check was
trained on, to compare): the ROC AUC of the paper's score (Pearson over all channels),
of each channel alone (the fingerprint's channel c against the residual's channel c), and of the
channel-mean (grey) fingerprint against the grey residual, each oriented by the check's training
centres, so below 0.5 means inverted. A channel near 1 beside one near 0 says the fingerprint
learned, in that channel, something of its training images that held-out images show with the
opposite sign: the full score sums them, and its AUC falls between. Also the fingerprint's RMS
per channel and the correlation between its channels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def channel_aucs(fingerprint, residuals, labels, sign: float) -> dict:
    """AUC of the full score, each channel alone and the grey (channel-mean) pair, oriented by ``sign``."""
    from sklearn.metrics import roc_auc_score

    from dif.fingerprint import pearson

    fp, r = fingerprint.double(), residuals.double()
    y = np.asarray(labels)

    def auc(f, x) -> float:
        return round(float(roc_auc_score(y, sign * pearson(f, x).numpy())), 4)

    out = {"all": auc(fp, r)}
    for c in range(fp.shape[-3]):
        out[f"channel{c}"] = auc(fp[:, c:c + 1], r[:, c:c + 1])
    out["grey"] = auc(fp.mean(-3, keepdim=True), r.mean(-3, keepdim=True))
    return out


def main(argv=None) -> int:
    from dif.atomic import check_output_file, write_text_atomic
    from dif.checkpoint import load_fingerprint_dir
    from dif.cli import Parser, int_in
    from dif.data import compute_residuals, find_labelled
    from dif.detect import Detector
    from dif.errors import DIFError
    from dif.extractors import build_extractor

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("check", type=Path, help="CHECK_DIR of train_dif.py")
    p.add_argument("data", type=Path, help="held-out images: 0_real/ and 1_fake/")
    p.add_argument("--train", type=Path, default=None, help="the training images (0_real/, 1_fake/), to compare")
    p.add_argument("--epoch", type=int_in(0, 10**7), default=None, help="checkpoint epoch (default: the last)")
    p.add_argument("--out", type=Path, default=None, help="JSON of the results")
    args = p.parse_args(argv)
    if args.out is not None:
        check_output_file(args.out, "--out")
    loaded = load_fingerprint_dir(args.check, args.epoch)
    det = Detector.from_state(loaded.state)
    fp = det.fingerprint
    if fp.shape[-3] < 2:
        raise DIFError(f"{args.check}: the fingerprint has {fp.shape[-3]} channel; nothing to compare")
    ext = build_extractor(loaded.extractor)
    sets = {"test": find_labelled(args.data)}
    if args.train is not None:
        sets = {"train": find_labelled(args.train), **sets}
    result = {"check": str(args.check), "extractor": ext.spec, "epoch": loaded.state.epoch,
              "fingerprint_rms": [round(float(v), 4) for v in fp.double().std(dim=(0, 2, 3))],
              "channel_correlation": np.round(np.corrcoef(fp[0].double().reshape(fp.shape[-3], -1).numpy()), 3).tolist()}
    for name, s in sets.items():
        cache = compute_residuals(s.paths, s.labels, ext, det.crop)
        y = cache.labels.numpy()
        if min((y == 0).sum(), (y == 1).sum()) == 0:
            raise DIFError(f"{s.root}: both classes need at least one image of at least {det.crop[0]} px")
        result[name] = channel_aucs(fp, cache.residuals, y, det.sign)
        print(f"{name} ({int((y == 0).sum())} + {int((y == 1).sum())}): AUC " +
              ", ".join(f"{k} {v:.3f}" for k, v in result[name].items()), flush=True)
    print("fingerprint RMS per channel", result["fingerprint_rms"], "; correlation between channels",
          result["channel_correlation"])
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
