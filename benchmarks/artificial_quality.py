#!/usr/bin/env python3
"""Quality, robustness and attribution of an artificial-fingerprint encoder/decoder pair.

On held-out photos (default: seeded crops of ../shared/data/natural/live1, which the shipped pair
never saw; with --whole, every photo whole, centre-cropped and resized to the pair's resolution as
the embed and detect commands do, which is how a user's images reach the pair): bit accuracy,
share of strings decoded perfectly, PSNR and SSIM of fingerprinted vs clean; bit accuracy after the
paper's perturbations (Gaussian noise, blur, JPEG, crop: each applied to the saved 8-bit
fingerprinted image, then brought back to the decoder's resolution as the detect command does);
and attribution among 1,000 random users (each image fingerprinted with its own user's string):
fingerprinted images must go to their user, clean images to nobody.

    python benchmarks/artificial_quality.py [--check checks/artificial] [--photos DIR ...] [--whole] [--json OUT.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PERTURBATIONS = ["noise0.05", "noise0.1", "blur1", "blurk3", "blurk5", "jpeg100", "jpeg95", "jpeg90", "jpeg80", "jpeg75",
                 "jpeg60", "jpeg50", "jpeg40", "jpeg30", "crop0.78"]
# the paper's robust training (Yu et al. 2021, 128 px CelebA), as the issue quotes it: bit accuracy under JPEG
PAPER = {"jpeg90": 0.90, "jpeg50": 0.76}


def main(argv=None) -> int:
    import numpy as np
    import torch

    from _common import shared_data
    from dif.artificial.bits import attribute, decode_bits, random_bits
    from dif.artificial.train import fixed_crops, measure, preprocess
    from dif.artificial.weights import load_model
    from dif.atomic import check_output_file, write_text_atomic
    from dif.cli import Parser, int_in
    from dif.data import list_images
    from dif.errors import DIFError
    from dif.robustness import get_perturbation

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--check", type=Path, nargs="+", default=[ROOT / "checks" / "artificial"],
                   help="folder(s) with encoder.pth, decoder.pth (several: compared in the figure)")
    p.add_argument("--figure", type=Path, default=None, help="bit accuracy under each perturbation, one line per pair")
    p.add_argument("--photos", type=Path, nargs="+", default=None,
                   help="folder(s) of held-out photos (default: ../shared/data/natural/live1)")
    p.add_argument("--whole", action="store_true",
                   help="each photo whole, centre-cropped to its shorter side and resized to the resolution (the "
                        "embed and detect commands' preprocessing) instead of --per-image windows at its own scale")
    p.add_argument("--per-image", type=int_in(1, 1000), default=8, help="seeded crops per photo (without --whole)")
    p.add_argument("--users", type=int_in(1, 10**6), default=1000)
    p.add_argument("--seed", type=int_in(0, 2**31), default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    check_output_file(args.json, "--json")
    check_output_file(args.figure, "--figure")
    photos = args.photos
    if photos is None:
        data = shared_data()
        if data is None:
            raise DIFError("../shared/data not found (set DIF_SHARED_DATA) or give --photos")
        photos = [data / "natural" / "live1"]
    for d in photos:
        if not d.is_dir():
            raise DIFError(f"--photos: {d} is not a folder")
    paths = [f for d in photos for f in list_images(d)]
    if not paths:  # before any pair is loaded or measured
        raise DIFError("no readable photo in --photos")
    results = {}
    for check in args.check:
        print(f"== {check}")
        enc = load_model(check / "encoder.pth", "encoder")
        dec = load_model(check / "decoder.pth", "decoder", enc.resolution, enc.fingerprint_length)
        res, n = enc.resolution, enc.fingerprint_length
        x = whole_photos(paths, res) if args.whole else fixed_crops(paths, res, args.per_image, args.seed + 1)
        out = {"check": str(check), "photos": [str(d) for d in photos], "whole": args.whole, "crops": len(x),
               "resolution": res, "bits": n}
        out["clean"] = measure(enc, dec, x, seed=args.seed)
        what = "photos resized" if args.whole else "crops"
        print(f"{len(x)} held-out {what} at {res} px: bit accuracy {out['clean']['bit_accuracy']:.4f} "
              f"(perfect {out['clean']['perfect']:.1%}), PSNR {out['clean']['psnr']:.2f} dB, SSIM {out['clean']['ssim']:.4f}")
        out["capacity"] = _capacity(enc, dec, x, args.seed)
        c = out["capacity"]
        print(f"  per-bit accuracy: min {c['per_bit_min']:.3f}, median {c['per_bit_median']:.3f}, bits under 0.75: "
              f"{c['bits_under_0.75']}; decoder features never active: {c['dead_conv_features']}/{c['conv_features']} "
              f"(last convolution), {c['dead_dense_units']}/{c['dense_units']} (dense layer)")
        out["perturbed"] = {}
        for name in PERTURBATIONS:
            f = get_perturbation(name)
            m = measure(enc, dec, x, seed=args.seed, perturb=lambda im, f=f: preprocess(f(im), res))
            out["perturbed"][name] = m["bit_accuracy"]
            print(f"  {name:<9} bit accuracy {m['bit_accuracy']:.4f}")

        # attribution among --users random users
        g = torch.Generator().manual_seed(args.seed + 3)
        db = random_bits(args.users, n, g)
        users = [f"user{i}" for i in range(args.users)]
        owner = torch.randint(args.users, (len(x),), generator=g)
        with torch.no_grad():
            marked = (enc(db[owner], x) * 255).round() / 255
            got_marked = decode_bits(dec(marked)).numpy().astype(np.uint8)
            got_clean = decode_bits(dec(x)).numpy().astype(np.uint8)
        dbn = db.numpy().astype(np.uint8)
        a_marked = attribute(got_marked, users, dbn)
        a_clean = attribute(got_clean, users, dbn)
        out["attribution"] = {
            "users": args.users, "alpha": 1e-6,
            "fingerprinted_to_own_user": float(np.mean([a.attributed and a.user == users[o] for a, o in zip(a_marked, owner.tolist())])),
            "fingerprinted_to_another_user": float(np.mean([a.attributed and a.user != users[o] for a, o in zip(a_marked, owner.tolist())])),
            "clean_attributed": float(np.mean([a.attributed for a in a_clean])),
            "clean_best_match_bits_max": int(max(a.matching_bits for a in a_clean)),
            "fingerprinted_match_bits_min": int(min(a.matching_bits for a in a_marked)),
        }
        a = out["attribution"]
        print(f"attribution among {args.users} users (alpha 1e-6, Bonferroni): fingerprinted -> own user "
              f"{a['fingerprinted_to_own_user']:.1%}, -> another {a['fingerprinted_to_another_user']:.1%}; clean attributed "
              f"{a['clean_attributed']:.1%} (best clean match {a['clean_best_match_bits_max']}/{n} bits; worst fingerprinted "
              f"{a['fingerprinted_match_bits_min']}/{n})")
        results[str(check)] = out
    if args.figure:
        _figure(results, args.figure)
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0


def whole_photos(paths, res: int):
    """Every readable photo as the embed / detect commands see it: their own decoding and
    preprocessing (``stream_images`` with ``Preprocess``: centre crop to the shorter side, resize to
    ``res``); an unreadable photo is skipped with a warning."""
    import torch

    from dif.artificial.train import Preprocess
    from dif.data import stream_images
    from dif.errors import DIFError

    out = [t for _, cols in stream_images(paths, [Preprocess(res)], workers=0) for t in cols[0]]
    if not out:
        raise DIFError("no readable photo in --photos")
    return torch.stack(out)


def _capacity(enc, dec, x, seed: int) -> dict:
    """Where the errors sit: per-bit accuracy over the held-out crops (a few bits at chance, or every
    bit a little wrong?) and the decoder features that are zero on every fingerprinted crop (dead
    ReLUs: at 32 px the last convolution is the whole 1 x 1 x 128 code the dense head reads)."""
    import torch

    from dif.artificial.bits import decode_bits, random_bits

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bits = random_bits(len(x), enc.fingerprint_length, g)
        y = (enc(bits, x) * 255).round() / 255
        feats = dec.decoder(y).flatten(1)
        hidden = dec.dense[1](dec.dense[0](feats))
        per_bit = (decode_bits(dec.dense[2](hidden)).float() == bits).float().mean(0)
    return {"per_bit_min": float(per_bit.min()), "per_bit_median": float(per_bit.median()),
            "bits_under_0.75": int((per_bit < 0.75).sum()),
            "conv_features": feats.shape[1], "dead_conv_features": int((feats.amax(0) <= 0).sum()),
            "dense_units": hidden.shape[1], "dead_dense_units": int((hidden.amax(0) <= 0).sum())}


def _figure(results: dict, path: Path) -> None:
    from dif.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    names = ["clean"] + PERTURBATIONS
    for check, r in results.items():
        ys = [r["clean"]["bit_accuracy"]] + [r["perturbed"][n] for n in PERTURBATIONS]
        ax.plot(range(len(names)), ys, "o-", label=f"{Path(check).name} ({r['clean']['psnr']:.1f} dB)")
    ax.plot([names.index(k) for k in PAPER], list(PAPER.values()), "k*", ms=9, label="paper (robust, 128 px)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), labels=names, rotation=30, ha="right")
    ax.set_ylim(0.45, 1.01)
    ax.set_ylabel("bit accuracy")
    whole = any(r.get("whole") for r in results.values())
    ax.set_title(f"Artificial fingerprints under perturbations (held-out photos, {'whole, resized' if whole else 'windows'})",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
