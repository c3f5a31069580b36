"""Is there a fixed trace to find? (``benchmarks/trace_probe.py``)

The *mean-difference* fingerprint (the mean fake residual minus the mean real residual of a
training set's centre crops, or of every tile with ``tiles`` 0, each tile a sample) correlated
with every test image's residual: an oracle with no U-Net, no copies and no choice; an image's
score is the mean over its tiles, as DIF scores it. Its test ROC AUC (not re-oriented: below 0.5
is worse than chance) says how far a fixed additive pattern separates the classes in that
residual. With perturbations, applied to train and test images alike, ``auc`` is the oracle that
knows the perturbation (how much trace is left to find at all) and ``auc_clean_fingerprint`` the
clean oracle on the perturbed test images. Also: the fakes' residual power at a ``period`` px
pattern's frequencies over the reals'.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..atomic import check_output_file, write_text_atomic
from ..choose import per_image_scores
from ..data import compute_residuals
from ..errors import DIFError
from ..extractors import build_extractor
from ..fingerprint import mean_difference, pearson
from ..robustness import get_perturbation, parse_perturbations, resize_factor
from .common import train_test_sets


def period_power_ratio(real, fake, period: int) -> float:
    """Mean residual power of the fakes over the reals' at the frequencies of a ``period`` px pattern
    (h/period on each axis and on the diagonal, with their harmonics below Nyquist)."""
    h, w = real.shape[-2:]
    power = [(torch.fft.fft2(x).abs() ** 2).mean(dim=(0, 1)) for x in (real, fake)]
    bins = []
    for k in range(1, period // 2 + 1):
        fy, fx = k * h // period, k * w // period
        bins += [(0, fx), (fy, 0), (fy, fx)]
    return float(sum(power[1][b] / power[0][b] for b in bins) / len(bins))


def period_after(period: int, perturbation: str) -> Optional[int]:
    """The trace's period in px after ``perturbation`` (``resizeF`` scales it; None: not a whole
    number of pixels, or under 2)."""
    scaled = period * resize_factor(perturbation)
    return int(round(scaled)) if abs(scaled - round(scaled)) < 1e-9 and round(scaled) >= 2 else None


def per_image_mean(paths, labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) per image: the mean score of each image's tiles (``choose.per_image_scores``
    with the image's path as its group)."""
    return per_image_scores(np.asarray(scores, dtype=np.float64), np.asarray(labels), np.asarray([str(p) for p in paths]))


def run(args) -> int:
    """Every (data, extractor, condition): the oracle's test AUC and the period power ratio."""
    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb.strip() else [])
    if args.out is not None:
        check_output_file(args.out, "--out")
    extractors = [build_extractor(s) for s in args.extractors.split(",") if s.strip()]
    if not extractors:
        raise DIFError("--extractors: no extractor named")
    sets = train_test_sets(args.data)
    crop = (args.crop, args.crop)
    rows = []
    for d, (train, test) in sets.items():
        for ext in extractors:
            clean_fp = None
            for cond in conditions:
                transform = None if cond == "clean" else get_perturbation(cond)
                tr = compute_residuals(train.paths, train.labels, ext, crop, transform=transform, tiles=args.tiles)
                te = compute_residuals(test.paths, test.labels, ext, crop, transform=transform, tiles=args.tiles)
                y, yt = tr.labels.numpy(), te.labels.numpy()
                if min((y == 0).sum(), (y == 1).sum(), (yt == 0).sum(), (yt == 1).sum()) == 0:
                    raise DIFError(f"{d}: every class of train/ and test/ needs at least one usable image "
                                   f"(at least {args.crop} px{'' if cond == 'clean' else ' after ' + cond})")
                real, fake = tr.residuals[y == 0], tr.residuals[y == 1]
                fp = mean_difference(tr.residuals, tr.labels)  # every tile a sample
                clean_fp = fp if cond == "clean" else clean_fp
                # fakes correlate positively by construction: not re-oriented
                y_img, s_img = per_image_mean(te.paths, yt, pearson(fp, te.residuals).numpy())
                auc = float(roc_auc_score(y_img, s_img))
                period = period_after(args.period, cond)
                y_train = per_image_mean(tr.paths, y, np.zeros(len(y)))[0]
                row = {"data": str(d), "extractor": ext.spec, "perturbation": cond, "tiles": args.tiles,
                       "train": [int((y_train == 0).sum()), int((y_train == 1).sum())],
                       "test": [int((y_img == 0).sum()), int((y_img == 1).sum())], "tiles_scored": len(yt),
                       "auc": round(auc, 4), "period": period,
                       "period_power_ratio": None if period is None else round(period_power_ratio(real, fake, period), 2)}
                text = f"{d.name} {ext.spec} {cond}: mean-difference fingerprint, test AUC {row['auc']:.3f}"
                if cond != "clean":
                    seen = float(roc_auc_score(*per_image_mean(te.paths, yt, pearson(clean_fp, te.residuals).numpy())))
                    row["auc_clean_fingerprint"] = round(seen, 4)
                    text += f" (the clean one: {seen:.3f})"
                rows.append(row)
                if period is not None:
                    text += f"; period-{period} power fake / real {row['period_power_ratio']:.2f}"
                print(text, flush=True)
    if args.out is not None:
        write_text_atomic(args.out, json.dumps({"period": args.period, "crop": args.crop, "tiles": args.tiles,
                                                "conditions": conditions, "rows": rows}, indent=1) + "\n")
    return 0

