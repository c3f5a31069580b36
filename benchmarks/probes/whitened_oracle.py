#!/usr/bin/env python3
"""One-off probe: does whitening the residuals (a per-frequency matched filter) lift the trace
probe's mean-difference oracle on the large faces?

    python benchmarks/probes/whitened_oracle.py FACES --extractors wavelet-dwt,highpass

FACES holds train/ and test/ with 0_real/ and 1_fake/. Both splits are re-saved as JPEG 90 (as the
trained fingerprints saw them), every 256 px tile is a sample. Fingerprints: the mean difference,
the mean difference of unit-norm residuals, and the whitened mean difference W = D / (S + lam
mean S) of unit-norm residuals (D the class-mean difference of the residuals' 2-D spectra, S the
pooled within-class power per frequency). Test AUC of the per-image mean Pearson score.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from dif.data import compute_residuals, find_labelled
from dif.experiments.trace import per_image_mean
from dif.extractors import build_extractor
from dif.fingerprint import mean_difference, pearson
from dif.robustness import get_perturbation


def unit(r: torch.Tensor) -> torch.Tensor:
    r = r - r.mean(dim=(1, 2, 3), keepdim=True)
    return r / r.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def whitened(res: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    X = torch.fft.rfft2(res.double())
    m1, m0 = X[labels == 1].mean(0), X[labels == 0].mean(0)
    S = torch.cat([(X[labels == 1] - m1).abs() ** 2, (X[labels == 0] - m0).abs() ** 2]).mean(0)
    return torch.fft.irfft2((m1 - m0) / (S + lam * S.mean()), s=res.shape[-2:]).float()[None]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("faces", type=Path)
    p.add_argument("--extractors", default="wavelet-dwt,highpass")
    args = p.parse_args()
    jpeg90 = get_perturbation("jpeg90")
    tr_set, te_set = find_labelled(args.faces / "train"), find_labelled(args.faces / "test")
    for spec in args.extractors.split(","):
        ext = build_extractor(spec)
        tr = compute_residuals(tr_set.paths, tr_set.labels, ext, (256, 256), transform=jpeg90, tiles=0)
        te = compute_residuals(te_set.paths, te_set.labels, ext, (256, 256), transform=jpeg90, tiles=0)
        fps = {"mean difference": mean_difference(tr.residuals, tr.labels),
               "unit-norm mean difference": mean_difference(unit(tr.residuals), tr.labels)}
        for lam in (0.01, 0.1, 1.0):
            fps[f"whitened, lam {lam}"] = whitened(unit(tr.residuals), tr.labels, lam)
        yt = te.labels.numpy()
        for name, fp in fps.items():
            auc = roc_auc_score(*per_image_mean(te.paths, yt, pearson(fp, te.residuals).numpy()))
            print(f"{spec} {name}: test AUC {auc:.3f}", flush=True)


if __name__ == "__main__":
    main()
