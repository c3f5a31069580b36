#!/usr/bin/env python3
"""One-off probe (issue 42): on the development faces, what limits a DIF fingerprint trained on
20 + 20 faces at 1024 px (JPEG 90)? Residuals are computed once per extractor and cached; then
fingerprints of several lengths (U-Net steps) are trained, and the held-out faces scored
(AUC, accuracy at each kind of centre, and the out-of-fold AUC of folds of each length).

    python benchmarks/probes/faces_probe.py TRAIN TEST --extractor highpass --steps 25,100,300 --out OUT.json
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dif.calibration import out_of_fold_scores
from dif.choose import config_residuals, per_image_scores
from dif.config import DIFConfig
from dif.data import compute_residuals, find_labelled
from dif.detect import Detector
from dif.extractors import build_extractor
from dif.fingerprint import pearson, train_fingerprint
from dif.robustness import get_perturbation, parse_reencode


def test_scores(fp, cache):
    y = cache.labels.numpy()
    groups = np.unique([str(p) for p in cache.paths], return_inverse=True)[1]
    s = torch.cat([pearson(fp, cache.residuals[i:i + 256]) for i in range(0, len(y), 256)]).numpy()
    return per_image_scores(s, y, groups)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train", type=Path)
    ap.add_argument("test", type=Path)
    ap.add_argument("--extractor", default="highpass")
    ap.add_argument("--steps", default="100")
    ap.add_argument("--fold-steps", default="")
    ap.add_argument("--reencode", default="jpeg:90")
    ap.add_argument("--augment", type=int, default=2)
    ap.add_argument("--tiles", type=int, default=0)
    ap.add_argument("--perturb", default="")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    out = {"args": {k: str(v) for k, v in vars(a).items()}, "runs": []}
    cfg = DIFConfig(extractor=a.extractor, reencode=a.reencode, augment=a.augment, tiles=a.tiles)
    ext = build_extractor(a.extractor, "cpu", precision=cfg.extractor_precision)
    tr, te = find_labelled(a.train), find_labelled(a.test)
    t = time.perf_counter()
    ts = config_residuals(tr.paths, tr.labels, ext, cfg, "cpu")
    out["train_residual_s"] = time.perf_counter() - t
    base = parse_reencode(a.reencode) or (lambda x: x)
    tests = {"clean": base}
    for name in filter(None, a.perturb.split(",")):
        p = get_perturbation(name)
        tests[name] = (lambda p: (lambda x: p(base(x))))(p)
    t = time.perf_counter()
    caches = {k: compute_residuals(te.paths, te.labels, ext, (cfg.crop, cfg.crop), transform=f, tiles=a.tiles,
                                   allow_smaller=True) for k, f in tests.items()}
    out["test_residual_s"] = time.perf_counter() - t
    print(f"residuals: train {out['train_residual_s']:.0f} s ({len(ts.cache.labels)}), test {out['test_residual_s']:.0f} s",
          flush=True)
    for steps in [int(s) for s in a.steps.split(",")]:
        t = time.perf_counter()
        c = replace(cfg, epochs=steps)
        st = train_fingerprint(ts.cache.residuals, ts.cache.labels, c, steps_per_epoch=1)
        det = Detector.from_state(st, c.centre_steps)
        # centres from the clean training images' scores (in sample)
        ytr, str_ = test_scores(st.fingerprint, type(ts.cache)(ts.cache.paths, ts.cache.labels, ts.cache.residuals))
        row = {"steps": steps, "seconds": time.perf_counter() - t, "paper_centres": [det.mu_real, det.mu_fake]}
        for k, cache in caches.items():
            y, s = test_scores(st.fingerprint, cache)
            auc = roc_auc_score(y, s * det.direction)
            thr = 0.5 * (det.mu_real + det.mu_fake)
            acc_paper = float(((s > thr) == (y == 1)).mean() if det.direction > 0 else ((s < thr) == (y == 1)).mean())
            best = max(float(((s * det.direction > v) == (y == 1)).mean()) for v in s * det.direction)
            row[k] = {"auc": auc, "acc_paper": acc_paper, "acc_best_threshold": best}
        print(json.dumps(row), flush=True)
        out["runs"].append(row)
    for fs in [int(s) for s in a.fold_steps.split(",") if s]:
        t = time.perf_counter()
        sc = out_of_fold_scores(ts.cache.residuals, ts.cache.labels, replace(cfg, epochs=fs, max_shift=0), 2, "cpu",
                                ts.groups, False, 1e9)["corr"]  # per_image huge: one step per epoch
        y, s = per_image_scores(sc[ts.clean], ts.cache.labels.numpy()[ts.clean], ts.groups[ts.clean])
        row = {"fold_steps": fs, "oof_auc": float(roc_auc_score(y, s)), "seconds": time.perf_counter() - t}
        print(json.dumps(row), flush=True)
        out["runs"].append(row)
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
