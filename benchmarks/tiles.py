#!/usr/bin/env python3
"""Accuracy against the number of pixels used: DIF trained and scored on 1, 2, 4, ... tiles per image.

    python benchmarks/tiles.py --out OUT [--data DIR] [--crop 128] [--tiles 1,2,4,8,0]
        [--perturb jpeg90,jpeg75,resize0.5] [--denoiser dncnn] [--augment 0] [--epochs 100]
        [--ae-steps 800] [--ae-ups 2] [--data-only]

DIR holds train/ and test/, each with 0_real/ and 1_fake/. Without --data a lossless large-image
set is made first (OUT/data, seeded): the colour LIVE1 photos (29, about 768 x 512) and the grey
BSD68 photos (68, 481 x 321) of ../shared/data/natural, each used once, either as itself (real) or
passed whole through a fully convolutional autoencoder (``dif.generators.ImageAutoencoder``,
trained for --ae-steps on 64 px crops of train400, which none of these photos is; ``--ae-ups``
up-samplings, each doubling the period of its trace: 4 px by default) (fake); fakes
of grey photos are made grey again, so colour tells nothing. Photos are assigned to train / test
and real / fake at random within each source, so both splits and classes hold both kinds.

For each tile count N (0 = every tile): one fingerprint trained on the first N tiles of each
training image (``dif.crop.tile_offsets``: nearest the centre first, on the centre crop's phase;
an epoch counts images), its paper centres, and the test images scored by the mean of their first
N tiles' correlations, clean and under each perturbation (applied to the whole test image before
tiling). The same fingerprint trained on one tile is also scored with N tiles (the gain of the
scoring alone). Residuals are computed once per condition for every tile and shared.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_large_set(out: Path, shared: Path, ae_steps: int, seed: int, ups: int = 2) -> dict:
    """The lossless large-image set (see the module docstring) in out/{train,test}/{0_real,1_fake}."""
    import torch
    from PIL import Image

    from dif.data import list_images, load_image
    from dif.generators import random_crops, train_image_autoencoder

    nat = shared / "natural"
    crops = random_crops([load_image(p) for p in list_images(nat / "train400")], 64, 2000, seed)
    net, losses = train_image_autoencoder(crops, ae_steps, seed=seed, ups=ups)
    rng = np.random.default_rng(seed)
    grid = 2 ** ups
    counts: dict = {}
    for source in ("live1", "bsd68"):
        photos = list_images(nat / source)
        order = rng.permutation(len(photos))
        for rank, i in enumerate(order):
            split, cls = ("train", "test")[rank % 2], ("0_real", "1_fake")[(rank // 2) % 2]
            img = load_image(photos[i])
            h, w = img.shape[-2] // grid * grid, img.shape[-1] // grid * grid  # the autoencoder's grid
            img = img[:, :h, :w]
            if cls == "1_fake":
                with torch.no_grad():
                    img = net(img.unsqueeze(0))[0]
                if source == "bsd68":
                    img = img.mean(0, keepdim=True).expand(3, -1, -1)
            arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            dst = out / split / cls / f"{source}_{photos[i].stem}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(dst)
            counts[f"{split}/{cls}"] = counts.get(f"{split}/{cls}", 0) + 1
    return {"ae_steps": ae_steps, "ae_ups": ups, "ae_l1_last50": float(np.mean(losses[-50:])), "counts": counts,
            "seed": seed}


def per_image(cache, n: int) -> tuple[list, list[int]]:
    """Row indices of the first ``n`` tiles (0: all) of each image of a tiled residual cache, and its labels."""
    rows: dict = {}
    for k, p in enumerate(cache.paths):
        rows.setdefault(p, []).append(k)
    idx = [r[:n] if n else r for r in rows.values()]
    return idx, [int(cache.labels[r[0]]) for r in rows.values()]


def main(argv=None) -> int:
    import torch

    from _common import shared_data
    from dif.atomic import RunFolder, write_text_atomic
    from dif.cli import Parser, int_in
    from dif.config import DIFConfig
    from dif.data import compute_residuals, find_labelled
    from dif.detect import Detector
    from dif.errors import DIFError
    from dif.extractors import build_extractor
    from dif.fingerprint import epoch_steps, train_fingerprint
    from dif.metrics import binary_metrics
    from dif.robustness import get_perturbation

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="DIR with train/ and test/ (default: make the LIVE1 + BSD68 "
                                                           "autoencoder set in OUT/data)")
    p.add_argument("--crop", type=int_in(32, 4096), default=128)
    p.add_argument("--tiles", default="1,2,4,8,0", help="tile counts to compare (0 = every tile)")
    p.add_argument("--perturb", default="jpeg90,jpeg75,resize0.5")
    p.add_argument("--denoiser", default="dncnn")
    p.add_argument("--augment", type=int_in(0, 0), default=0, help="only 0: the comparison isolates the tiles")
    p.add_argument("--epochs", type=int_in(1, 10**5), default=100)
    p.add_argument("--ae-steps", type=int_in(1, 10**6), default=800)
    p.add_argument("--ae-ups", type=int_in(1, 4), default=2, help="the autoencoder's up-samplings (trace period 2^N px)")
    p.add_argument("--data-only", action="store_true", help="make the large-image set in OUT/data and stop")
    p.add_argument("--seed", type=int_in(0, 2**31), default=0, help="seed of the data set (and the first fingerprint)")
    p.add_argument("--seeds", type=int_in(1, 100), default=3, help="fingerprints trained per tile count (seeds seed, "
                                                                   "seed + 1, ...): one training is one noisy draw")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--figure", type=Path, default=None, help="also copy the figure here")
    args = p.parse_args(argv)
    try:
        counts = [int(s) for s in args.tiles.split(",") if s.strip()]
    except ValueError:
        raise DIFError("--tiles: whole numbers separated by commas") from None
    if not counts or min(counts) < 0:
        raise DIFError("--tiles needs counts >= 0")
    conditions = ["clean"] + [c.strip() for c in args.perturb.split(",") if c.strip()]
    perts = {c: (None if c == "clean" else get_perturbation(c)) for c in conditions}
    shared = shared_data()
    if args.data is None and shared is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA) and no --data given")
    if args.data_only and args.data is not None:
        raise DIFError("--data-only makes the set: give no --data")
    if args.data is not None:
        find_labelled(args.data / "train")
        find_labelled(args.data / "test")
    t0 = time.perf_counter()
    record: dict = {"crop": args.crop, "tiles": counts, "denoiser": args.denoiser, "epochs": args.epochs,
                    "conditions": conditions, "seed": args.seed, "seeds": args.seeds}
    with RunFolder(args.out, args.overwrite, lambda n: n in ("data", "results.json", "tiles.png"), what="--out") as run:
        data = args.data
        if data is None:
            data = run.tmp / "data"
            record["data"] = make_large_set(data, shared, args.ae_steps, args.seed, args.ae_ups)
            print(f"made the large-image set in {time.perf_counter() - t0:.0f} s: {record['data']['counts']}", flush=True)
            if args.data_only:
                write_text_atomic(run.tmp / "results.json", json.dumps(record, indent=1) + "\n")
                run.commit()
                return 0
        record["data_dir"] = str(args.data) if args.data else "OUT/data"
        ext = build_extractor(args.denoiser, "cpu")
        crop = (args.crop, args.crop)
        train = find_labelled(data / "train")
        tr = compute_residuals(train.paths, train.labels, ext, crop, tiles=0)
        test = find_labelled(data / "test")
        te = {c: compute_residuals(test.paths, test.labels, ext, crop, transform=perts[c], tiles=0,
                                   workers=0) for c in conditions}
        n_train_img = len(set(tr.paths))
        tiles_per = {c: float(np.mean([len(r) for r in per_image(te[c], 0)[0]])) for c in conditions}
        record["tiles_per_test_image"] = tiles_per
        print(f"residuals of every tile: {len(tr.paths)} train tiles ({n_train_img} images), "
              + ", ".join(f"{c} {len(te[c].paths)}" for c in conditions) + f"; {time.perf_counter() - t0:.0f} s", flush=True)
        fps: dict = {}
        for n in counts:
            idx, _ = per_image(tr, n)
            rows = torch.tensor([k for r in idx for k in r])
            for k in range(args.seeds):
                cfg = DIFConfig(epochs=args.epochs, crop=args.crop, extractor=ext.spec, augment=0, seed=args.seed + k)
                state = train_fingerprint(tr.residuals[rows], tr.labels[rows], cfg,
                                          steps_per_epoch=epoch_steps(len(rows), len(rows) / len(idx), cfg.batch_size))
                fps[n, k] = Detector.from_state(state, cfg.centre_steps)
            print(f"trained {args.seeds} fingerprint(s) on {n or 'all'} tile(s) per image; "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        results = []
        for (train_n, k), det in fps.items():
            for c in conditions:
                corr = det.correlate(te[c].residuals)
                for score_n in counts:
                    if train_n != score_n and train_n != counts[0]:
                        continue  # every N trained and scored alike, and the first N's fingerprints scored with each N
                    idx, labels = per_image(te[c], score_n)
                    s = np.array([corr[r].mean() for r in idx])
                    m = binary_metrics(det.oriented(s), labels, det.oriented_threshold)
                    px = float(np.mean([len(r) for r in idx])) * args.crop ** 2
                    results.append({"train_tiles": train_n, "score_tiles": score_n, "seed": args.seed + k, "condition": c,
                                    "accuracy": m["accuracy"], "auc": m["auc"], "pixels_per_image": px})
        record["results"] = results
        record["seconds"] = round(time.perf_counter() - t0, 1)
        _figure(record, run.tmp / "tiles.png")
        write_text_atomic(run.tmp / "results.json", json.dumps(record, indent=1) + "\n")
        run.commit()
    print(f"train tiles, score tiles: accuracy / AUC per condition, mean (sd) over {args.seeds} fingerprint(s)")
    for tn, sn, c, acc, acc_sd, auc, auc_sd, px in summary(record):
        print(f"  {tn or 'all':>4} {sn or 'all':>4}  {c:<10} {acc:.3f} ({acc_sd:.3f}) / {auc:.3f} ({auc_sd:.3f})  "
              f"{px / 1e3:.0f} kpx")
    if args.figure:
        import shutil

        args.figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out / "tiles.png", args.figure)
    print(f"{record['seconds']:.0f} s; wrote {args.out}")
    return 0


def summary(record: dict) -> list[tuple]:
    """(train tiles, score tiles, condition, accuracy mean, sd, AUC mean, sd, pixels) over seeds."""
    out = []
    keys = sorted({(r["train_tiles"] or 10**6, r["score_tiles"] or 10**6, r["condition"]) for r in record["results"]},
                  key=lambda t: (t[0], t[1], record["conditions"].index(t[2])))
    for tn, sn, c in keys:
        tn, sn = tn % 10**6, sn % 10**6
        rows = [r for r in record["results"] if r["train_tiles"] == tn and r["score_tiles"] == sn and r["condition"] == c]
        acc, auc = np.array([r["accuracy"] for r in rows]), np.array([r["auc"] for r in rows])
        out.append((tn, sn, c, acc.mean(), acc.std(), auc.mean(), auc.std(), rows[0]["pixels_per_image"]))
    return out


def _figure(record: dict, path: Path) -> None:
    from dif.plots import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    first = record["tiles"][0]
    for k, metric in enumerate(("accuracy", "auc")):
        ax = axes[k]
        rows = summary(record)
        col = 3 if metric == "accuracy" else 5
        for j, c in enumerate(record["conditions"]):
            same = sorted((r[7], r[col], r[col + 1]) for r in rows if r[2] == c and r[0] == r[1])
            only = sorted((r[7], r[col], r[col + 1]) for r in rows if r[2] == c and r[0] == first)
            ax.errorbar([p[0] / 1e3 for p in same], [p[1] for p in same], yerr=[p[2] for p in same], fmt="o-",
                        color=f"C{j}", label=f"{c}: trained and scored on N", capsize=2)
            ax.errorbar([p[0] / 1e3 for p in only], [p[1] for p in only], yerr=[p[2] for p in only], fmt="x--",
                        color=f"C{j}", alpha=0.6, label=f"{c}: trained on {first or 'all'}, scored on N", capsize=2)
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("pixels scored per test image (thousands; N tiles of %d px)" % record["crop"])
        ax.set_ylabel(metric)
        ax.set_ylim(0.3 if metric == "accuracy" else 0.0, 1.01)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"DIF on whole images: tiles on the centre crop's phase (mean, sd over {record['seeds']} fingerprints)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
