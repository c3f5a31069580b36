#!/usr/bin/env python3
"""The authors' released fingerprints scored on their own sample images, per residual extractor.

    python benchmarks/official_fingerprints.py [--extractors dncnn,wavelet,wavelet-dwt,highpass,highpass:0.7]
        [--json OUT.json] [--card checks/denoiser/dncnn17.md] [--bootstrap 2000]

For every generator of ../shared/data/dif_official/samples (SD 1.4, GLIDE, DALL-E 2: 10 real + 10
fake each) and each extractor: the ROC AUC of the generator's own released fingerprint (oriented
by that fingerprint's real / fake centres) and the accuracy with the centres re-estimated by
leave-one-out (each image classified by the centres of the other 19). With the authors' own DnCNN
the paper's repository reports roughly SD 1.4 100%, GLIDE 85%, DALL-E 2 75% accuracy.
With 10 + 10 images per generator the AUC moves by about +-0.1 with the draw of images, so the
script also prints bootstrap 95% intervals of each extractor's mean AUC and of its difference to
the first extractor (the same resamples for every extractor: a paired comparison).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _common import shared_data

from dif.atomic import write_text_atomic


def loo_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Balanced accuracy when each image is classified by the centres of all the others."""
    pred = np.empty_like(labels)
    for i in range(len(scores)):
        keep = np.arange(len(scores)) != i
        mu_r = scores[keep & (labels == 0)].mean()
        mu_f = scores[keep & (labels == 1)].mean()
        pred[i] = int(abs(scores[i] - mu_f) < abs(scores[i] - mu_r))
    return float(np.mean([(pred[labels == c] == c).mean() for c in (0, 1)]))


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--extractors", default="dncnn,wavelet,wavelet-dwt,highpass,highpass:0.7")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--bootstrap", type=int_in(0, 10**6), default=2000,
                   help="resamples (images within each generator, the same for every extractor) for the intervals")
    p.add_argument("--card", type=Path, default=None,
                   help="model card (markdown) whose detection section is (re)written with this table")
    args = p.parse_args(argv)
    from dif.atomic import check_output_file
    from dif.checkpoint import load_fingerprint_dir
    from dif.data import compute_residuals, find_labelled
    from dif.extractors import build_extractor
    from dif.detect import Detector
    from dif.errors import DIFError

    root = shared_data()
    if root is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA)")
    check_output_file(args.json, "--json")
    check_output_file(args.card, "--card")
    samples = root / "dif_official" / "samples"
    gens = sorted(d.name for d in samples.iterdir() if d.is_dir())
    extractors = [build_extractor(spec) for spec in args.extractors.split(",")]
    detectors = {g: Detector.from_state(load_fingerprint_dir(root / "dif_official" / "checks" / g).state) for g in gens}
    datasets = {g: find_labelled(samples / g) for g in gens}
    table: dict = {}
    oriented: dict = {}
    labels: dict = {}
    for ext in extractors:
        table[ext.spec] = {}
        oriented[ext.spec] = {}
        for g in gens:
            det, ds = detectors[g], datasets[g]
            cache = compute_residuals(ds.paths, ds.labels, ext, det.crop)
            s = det.correlate(cache.residuals)
            y = cache.labels.numpy()
            labels[g] = y
            oriented[ext.spec][g] = det.oriented(s)
            table[ext.spec][g] = {"auc": pair_auc(oriented[ext.spec][g], y), "loo_accuracy": loo_accuracy(s, y)}
    md = markdown_table(table, gens)
    print(md)
    if args.bootstrap:
        intervals = bootstrap_mean_auc(oriented, labels, args.bootstrap)
        print()
        print(intervals_text(intervals))
        for spec, iv in intervals.items():
            table[spec]["mean_auc_interval"] = iv["interval"]
            table[spec]["paired_difference_vs_first"] = iv.get("difference")
    if args.json:
        write_text_atomic(args.json, json.dumps(table, indent=1) + "\n")
    if args.card:
        update_card(args.card, md + ("\n\n" + intervals_text(intervals) if args.bootstrap else ""))
    return 0


def pair_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC as the share of (fake, real) pairs ordered right (ties count half); cheap enough
    for thousands of bootstrap resamples."""
    f, r = scores[y == 1][:, None], scores[y == 0][None, :]
    return float(np.mean((f > r) + 0.5 * (f == r)))


def bootstrap_mean_auc(oriented: dict, labels: dict, n: int, seed: int = 0) -> dict:
    """95% intervals of each extractor's mean AUC over the generators, and of its difference
    to the first extractor, by resampling the real and the fake images of every generator
    (the same resample for every extractor: a paired comparison)."""
    rng = np.random.default_rng(seed)
    specs = list(oriented)
    draws = {s: [] for s in specs}
    for _ in range(n):
        aucs = {s: [] for s in specs}
        for g, y in labels.items():
            idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=int((y == c).sum())) for c in (0, 1)])
            for s in specs:
                aucs[s].append(pair_auc(oriented[s][g][idx], y[idx]))
        for s in specs:
            draws[s].append(np.mean(aucs[s]))
    out = {}
    first = np.array(draws[specs[0]])
    for s in specs:
        d = np.array(draws[s])
        out[s] = {"interval": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]}
        if s != specs[0]:
            diff = first - d
            out[s]["difference"] = {"vs": specs[0], "interval": [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))],
                                    "share_first_better": float(np.mean(diff > 0))}
    return out


def intervals_text(intervals: dict) -> str:
    specs = list(intervals)
    lines = [f"Bootstrap 95% intervals (images resampled within each generator): mean AUC, and `{specs[0]}` minus each other extractor"]
    for s, iv in intervals.items():
        lo, hi = iv["interval"]
        line = f"- `{s}`: mean AUC [{lo:.3f}, {hi:.3f}]"
        if "difference" in iv:
            dlo, dhi = iv["difference"]["interval"]
            line += f"; `{specs[0]}` - `{s}`: [{dlo:+.3f}, {dhi:+.3f}] ({100 * iv['difference']['share_first_better']:.0f}% of resamples favour `{specs[0]}`)"
        lines.append(line)
    return "\n".join(lines)


CARD_HEADING = "## Detection with the authors' released fingerprints"


def markdown_table(table: dict, gens: list[str]) -> str:
    head = "| extractor | " + " | ".join(f"{g} AUC / acc" for g in gens) + " | mean AUC | mean acc |"
    rows = [head, "|" + "---|" * (len(gens) + 3)]
    for spec, row in table.items():
        cells = " | ".join(f"{row[g]['auc']:.2f} / {row[g]['loo_accuracy']:.2f}" for g in gens)
        rows.append(f"| `{spec}` | {cells} | {np.mean([r['auc'] for r in row.values()]):.3f} | "
                    f"{np.mean([r['loo_accuracy'] for r in row.values()]):.3f} |")
    return "\n".join(rows)


def update_card(card: Path, md: str) -> None:
    """Replace (or append) the detection section of a model card with ``md``."""
    text = card.read_text() if card.is_file() else ""
    section = (f"{CARD_HEADING}\n\n`python benchmarks/official_fingerprints.py`: each generator's released fingerprint "
               f"on the official samples (10 real + 10 fake); AUC oriented by the fingerprint's own centres, accuracy "
               f"with leave-one-out centres.\n\n{md}\n")
    if CARD_HEADING in text:
        head, _, rest = text.partition(CARD_HEADING)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(card, text)


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
