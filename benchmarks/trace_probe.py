#!/usr/bin/env python3
"""Is there a fixed trace to find? A fingerprint with no training at all, on held-out images.

    python benchmarks/trace_probe.py DATA [DATA ...] [--denoisers highpass,wavelet-dwt] [--period 4]
        [--perturb resize0.5,jpeg75] [--out OUT.json]

DATA holds train/ and test/, each with 0_real/ and 1_fake/ (``python -m dif.demo`` makes one). For
each extractor the *mean-difference* fingerprint (the mean fake residual minus the mean real
residual of DATA/train, centre crops of ``--crop``) is correlated with the residual of every
DATA/test image (Pearson, DIF's score): the test ROC AUC (fakes should correlate positively by
construction; it is not re-oriented, so below 0.5 means worse than chance) says how
far a fixed additive pattern separates the classes in that residual, with no U-Net, no copies, no
choice. Also printed: the fakes' mean residual power at the frequencies of a ``--period`` px
pattern (the axes and the diagonal) over the reals' (1 = no periodic trace). A high AUC where the
trained fingerprint fails points at the training, not at the data.

With ``--perturb`` each named perturbation (``eval_dif.py --perturb``'s names) is also applied to
every image, train and test, before the centre crop, and two AUCs are reported: ``auc``, the
mean-difference fingerprint of the perturbed train images (an oracle that knows the perturbation:
how much trace is left to find at all), and ``auc_clean_fingerprint``, the clean one on the
perturbed test images (what a fingerprint trained on clean images can still see). After
``resizeF`` the period compared is ``--period`` x F (skipped when that is under 2 px or not whole).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def period_power_ratio(real, fake, period: int) -> float:
    """Mean residual power of the fakes over the reals' at the frequencies of a ``period`` px pattern
    (h/period on each axis and on the diagonal, with their harmonics below Nyquist)."""
    import torch

    h, w = real.shape[-2:]
    power = [(torch.fft.fft2(x).abs() ** 2).mean(dim=(0, 1)) for x in (real, fake)]
    bins = []
    for k in range(1, period // 2 + 1):
        fy, fx = k * h // period, k * w // period
        bins += [(0, fx), (fy, 0), (fy, fx)]
    return float(sum(power[1][b] / power[0][b] for b in bins) / len(bins))


def period_after(period: int, perturbation: str) -> int | None:
    """The trace's period in px after ``perturbation`` (``resizeF`` scales it; None: not a whole
    number of pixels, or under 2)."""
    from dif.robustness import resize_factor

    scaled = period * resize_factor(perturbation)
    return int(round(scaled)) if abs(scaled - round(scaled)) < 1e-9 and round(scaled) >= 2 else None


def main(argv=None) -> int:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from dif.atomic import check_output_file, write_text_atomic
    from dif.cli import Parser, int_in
    from dif.data import compute_residuals, find_labelled
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.fingerprint import mean_difference, pearson

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="folders with train/ and test/")
    p.add_argument("--denoisers", default="highpass,wavelet-dwt", help="comma-separated extractor specs")
    p.add_argument("--crop", type=int_in(16, 8192), default=256)
    p.add_argument("--period", type=int_in(2, 64), default=4, help="period in px of the trace whose power is compared")
    p.add_argument("--perturb", default="", help="also each of these perturbations, applied to train and test images "
                                                 "(eval_dif.py --perturb's names)")
    p.add_argument("--out", type=Path, default=None, help="JSON of every result")
    args = p.parse_args(argv)
    from dif.robustness import get_perturbation, parse_perturbations

    conditions = ["clean"] + (parse_perturbations(args.perturb) if args.perturb.strip() else [])
    if args.out is not None:
        check_output_file(args.out, "--out")
    extractors = [build_extractor(s) for s in args.denoisers.split(",") if s.strip()]
    if not extractors:
        raise DIFError("--denoisers: no extractor named")
    sets = {}
    for d in args.data:
        if not (d / "train").is_dir() or not (d / "test").is_dir():
            raise DIFError(f"{d}: needs train/ and test/, each with 0_real/ and 1_fake/")
        sets[d] = (find_labelled(d / "train"), find_labelled(d / "test"))
    crop = (args.crop, args.crop)
    rows = []
    for d, (train, test) in sets.items():
        for ext in extractors:
            clean_fp = None
            for cond in conditions:
                transform = None if cond == "clean" else get_perturbation(cond)
                tr = compute_residuals(train.paths, train.labels, ext, crop, transform=transform)
                te = compute_residuals(test.paths, test.labels, ext, crop, transform=transform)
                y, yt = tr.labels.numpy(), te.labels.numpy()
                if min((y == 0).sum(), (y == 1).sum(), (yt == 0).sum(), (yt == 1).sum()) == 0:
                    raise DIFError(f"{d}: every class of train/ and test/ needs at least one usable image "
                                   f"(at least {args.crop} px{'' if cond == 'clean' else ' after ' + cond})")
                real, fake = tr.residuals[y == 0], tr.residuals[y == 1]
                fp = mean_difference(tr.residuals, tr.labels)
                clean_fp = fp if cond == "clean" else clean_fp
                # fakes correlate positively by construction: not re-oriented
                auc = float(roc_auc_score(yt, pearson(fp, te.residuals).numpy().astype(np.float64)))
                period = period_after(args.period, cond)
                row = {"data": str(d), "extractor": ext.spec, "perturbation": cond,
                       "train": [int((y == 0).sum()), int((y == 1).sum())],
                       "test": [int((yt == 0).sum()), int((yt == 1).sum())], "auc": round(auc, 4), "period": period,
                       "period_power_ratio": None if period is None else round(period_power_ratio(real, fake, period), 2)}
                text = f"{d.name} {ext.spec} {cond}: mean-difference fingerprint, test AUC {row['auc']:.3f}"
                if cond != "clean":
                    seen = float(roc_auc_score(yt, pearson(clean_fp, te.residuals).numpy().astype(np.float64)))
                    row["auc_clean_fingerprint"] = round(seen, 4)
                    text += f" (the clean one: {seen:.3f})"
                rows.append(row)
                if period is not None:
                    text += f"; period-{period} power fake / real {row['period_power_ratio']:.2f}"
                print(text, flush=True)
    if args.out is not None:
        write_text_atomic(args.out, json.dumps({"period": args.period, "crop": args.crop, "conditions": conditions, "rows": rows}, indent=1)
                          + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
