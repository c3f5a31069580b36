"""Artificial fingerprints measured (``benchmarks/artificial.py``).

``run_quality``: on held-out photos (seeded windows, or each photo whole as the embed and detect
commands see it): bit accuracy, share of strings decoded perfectly, PSNR and SSIM; bit accuracy
after the paper's perturbations (each applied to the saved 8-bit fingerprinted image, then brought
back to the decoder's resolution as the detect command does); attribution among 1,000 random users.
``run_transfer``: the paper's central claim, on this machine: crops of clean photos fingerprinted
with one bit string, a small generator trained on them and an identical one on the clean crops;
the decoder reads the bits of each model's samples.
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..artificial.bits import attribute, bit_accuracy, bits_to_str, decode_bits, random_bits
from ..artificial.frame import check_psnr
from ..artificial.train import Preprocess, fixed_crops, measure, preprocess, psnr
from ..artificial.weights import load_model
from ..atomic import check_output_file, write_bytes_atomic, write_text_atomic
from ..cli import resolve_device
from ..data import list_images, load_image, stream_images
from ..errors import DIFError
from ..generators import GeneratorConfig, generator_levels, random_crops, train_generator
from ..plots import _plt, _save
from ..robustness import get_perturbation
from .common import need_shared_data

PERTURBATIONS = ["noise0.05", "noise0.1", "blur1", "blurk3", "blurk5", "jpeg100", "jpeg95", "jpeg90", "jpeg80", "jpeg75",
                 "jpeg60", "jpeg50", "jpeg40", "jpeg30", "crop0.78"]
# the paper's robust training (Yu et al. 2021, 128 px CelebA), as the issue quotes it: bit accuracy under JPEG
PAPER = {"jpeg90": 0.90, "jpeg50": 0.76}


def run_quality(args) -> int:
    """Quality, robustness and attribution of each pair of ``args.check``."""
    check_output_file(args.json, "--json")
    check_output_file(args.figure, "--figure")
    check_output_file(args.example, "--example")
    if args.psnr is not None:
        check_psnr(args.psnr)
    photos = args.photos
    if photos is None:
        photos = [need_shared_data() / "natural" / "live1"]
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
        if enc.frame_psnr:
            results[str(check)] = quality_frames(enc, dec, photos, args)
            if args.example:
                example_figure(enc, paths[0], args.example, args.seed)
            continue
        res, n = enc.resolution, enc.fingerprint_length
        x = whole_photos(paths, res) if args.whole else fixed_crops(paths, res, args.per_image, args.seed + 1)
        out = {"check": str(check), "photos": [str(d) for d in photos], "whole": args.whole, "crops": len(x),
               "resolution": res, "bits": n}
        out["clean"] = measure(enc, dec, x, seed=args.seed)
        what = "photos resized" if args.whole else "crops"
        print(f"{len(x)} held-out {what} at {res} px: bit accuracy {out['clean']['bit_accuracy']:.4f} "
              f"(perfect {out['clean']['perfect']:.1%}), PSNR {out['clean']['psnr']:.2f} dB, SSIM {out['clean']['ssim']:.4f}")
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
    if args.figure and all(r.get("protocol") != "frame" for r in results.values()):
        _figure(results, args.figure)
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0



# what a photo meets on its way (each applied to the saved fingerprinted photo at its own size)
FRAME_SUITE = ["jpeg90", "jpeg75", "jpeg50", "resize0.5", "resize0.25", "blur1", "crop0.894", "crop", "noise0.05"]


def quality_frames(enc, dec, folders, args) -> dict:
    """A whole-photo pair (``dif.artificial.frame``) on each folder of ``folders`` separately: every
    photo fingerprinted whole at its own size and saved in 8 bits; PSNR and SSIM at that size; bits
    read as ``detect`` reads them, clean and after each of ``FRAME_SUITE``; attribution among
    ``args.users`` random users of the clean and the fingerprinted photos."""
    from ..artificial.frame import embed_frame, read_frame
    from ..artificial.train import ssim

    n, g = enc.fingerprint_length, torch.Generator().manual_seed(args.seed + 3)
    level = args.psnr or enc.frame_psnr
    db = random_bits(args.users, n, g)
    dbn, users = db.numpy().astype(np.uint8), [f"user{i}" for i in range(args.users)]
    out = {"protocol": "frame", "psnr_set": level, "resolution": enc.resolution, "bits": n, "sets": {}}
    for folder in folders:
        names = ["clean"] + FRAME_SUITE
        acc = {k: [] for k in names}
        ps, ss, sizes, own, other, marked_bits, clean_bits = [], [], [], [], [], [], []
        t_embed = t_read = 0.0
        for path in list_images(folder):
            try:
                x = load_image(path)[None]
            except DIFError as exc:
                print(f"warning: skipping {path.name}: {exc}", file=sys.stderr)
                continue
            owner = int(torch.randint(args.users, (1,), generator=g))
            bits = db[owner][None]
            t = time.perf_counter()
            with torch.no_grad():
                y = (embed_frame(enc, bits, x, level) * 255).round() / 255
            t_embed += time.perf_counter() - t
            ps.append(float(psnr(y, x)))
            ss.append(float(ssim(y, x)))
            sizes.append(tuple(x.shape[-2:]))
            for name in names:
                z = y if name == "clean" else get_perturbation(name)(y[0])[None]
                t = time.perf_counter()
                with torch.no_grad():
                    got = decode_bits(read_frame(dec, z)[0])
                t_read += time.perf_counter() - t
                acc[name].append(float(bit_accuracy(bits, got)[0]))
                if name == "clean":
                    marked_bits.append(got[0].numpy().astype(np.uint8))
            with torch.no_grad():
                clean_bits.append(decode_bits(read_frame(dec, x)[0])[0].numpy().astype(np.uint8))
            a = attribute(marked_bits[-1][None], users, dbn)[0]
            own.append(a.attributed and a.user == users[owner])
            other.append(a.attributed and a.user != users[owner])
        if not ps:
            raise DIFError(f"no readable photo in {folder}")
        clean_att = [a.attributed for a in attribute(np.stack(clean_bits), users, dbn)]
        sides = sorted({max(s) for s in sizes})
        r = {"photos": len(ps), "sizes_px": [min(min(s) for s in sizes), max(max(s) for s in sizes)],
             "psnr": float(np.mean(ps)), "psnr_min": float(np.min(ps)), "ssim": float(np.mean(ss)),
             "bit_accuracy": {k: float(np.mean(v)) for k, v in acc.items()},
             "bit_accuracy_min": {k: float(np.min(v)) for k, v in acc.items()},
             "attribution": {"users": args.users, "alpha": 1e-6, "fingerprinted_to_own_user": float(np.mean(own)),
                             "fingerprinted_to_another_user": float(np.mean(other)),
                             "clean_attributed": float(np.mean(clean_att))},
             "seconds_per_photo": {"embed": t_embed / len(ps), "read": t_read / len(ps) / len(names)}}
        out["sets"][str(folder)] = r
        print(f"{folder} ({len(ps)} photos, {r['sizes_px'][0]}-{r['sizes_px'][1]} px, longest sides {sides[0]}-"
              f"{sides[-1]}): PSNR {r['psnr']:.2f} dB (min {r['psnr_min']:.2f}), SSIM {r['ssim']:.4f}")
        print("  bit accuracy " + ", ".join(f"{k} {v:.4f}" for k, v in r["bit_accuracy"].items()))
        a = r["attribution"]
        print(f"  attribution among {args.users} users: fingerprinted -> own user {a['fingerprinted_to_own_user']:.1%}, "
              f"-> another {a['fingerprinted_to_another_user']:.1%}; clean attributed {a['clean_attributed']:.1%}")
    return out


def example_figure(enc, path: Path, out: Path, seed: int, side: int = 320, gain: float = 20.0) -> None:
    """One photo fingerprinted whole by a whole-photo pair, at 100% zoom (a ``side`` px window at its
    centre, pixel for pixel, no resampling), left to right: the original, the fingerprinted photo as
    saved (8 bits), the difference times ``gain`` around mid-grey; 8 px white between them. A PNG."""
    from PIL import Image

    from ..artificial.frame import embed_frame
    from ..artificial.train import ssim

    x = load_image(path)[None]
    bits = random_bits(1, enc.fingerprint_length, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = (embed_frame(enc, bits, x, enc.frame_psnr) * 255).round() / 255
    h, w = x.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    panels = [t[0, :, top:top + side, left:left + side] for t in (x, y, (0.5 + gain * (y - x)).clamp(0, 1))]
    ph, pw = panels[0].shape[-2:]
    canvas = torch.ones(3, ph, 3 * pw + 16)
    for i, p in enumerate(panels):
        canvas[:, :, i * (pw + 8):i * (pw + 8) + pw] = p
    buf = io.BytesIO()
    Image.fromarray((canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buf, format="png")
    write_bytes_atomic(out, buf.getvalue())
    print(f"example: {path.name} ({w} x {h} px) at {float(psnr(y, x)):.2f} dB, SSIM {float(ssim(y, x)):.4f}; wrote {out}")


def whole_photos(paths, res: int):
    """Every readable photo as the embed / detect commands see it: their own decoding and
    preprocessing (``stream_images`` with ``Preprocess``: centre crop to the shorter side, resize to
    ``res``); an unreadable photo is skipped with a warning."""
    out = [t for _, cols in stream_images(paths, [Preprocess(res)], workers=0) for t in cols[0]]
    if not out:
        raise DIFError("no readable photo in --photos")
    return torch.stack(out)


def _figure(results: dict, path: Path) -> None:
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


def run_transfer(args) -> int:
    """Bits decoded from the samples of a generator trained on fingerprinted crops, and of its
    clean twin; sample grids into ``args.figures``. A whole-photo pair fingerprints each crop whole
    at ``args.size`` (default: the pair's resolution) and reads samples as ``detect`` does. With
    ``args.samples_dir`` each model's samples are saved there as PNG; ``args.reread`` reads the
    samples saved there by an earlier run instead of training (e.g. with another decoder).
    ``args.models`` names the generators to train or reread, so that two processes can train one each."""
    from PIL import Image
    from torchvision.utils import save_image

    check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    data = need_shared_data()
    enc = load_model(args.check / "encoder.pth", "encoder", device=device)
    dec = load_model(args.check / "decoder.pth", "decoder", device=device)
    res, n = args.size or enc.resolution, enc.fingerprint_length
    if res != enc.resolution and not enc.frame_psnr:
        raise DIFError(f"--size {res}: a square pair fingerprints {enc.resolution} px crops only")
    if args.reread and not args.samples_dir:
        raise DIFError("--reread reads the samples of --samples-dir: give it")
    if not args.reread:
        generator_levels(res)  # a size no generator makes fails now, not after the crops are fingerprinted
    saved = {}
    for name in args.models if args.reread else ():  # before any crop is fingerprinted
        folder = args.samples_dir / name
        saved[name] = sorted(folder.glob("*.png"))[:args.samples] if folder.is_dir() else []
        if not saved[name]:
            raise DIFError(f"--reread: no samples in {folder}")

    def read(x: torch.Tensor) -> torch.Tensor:
        from ..artificial.frame import read_frame

        with torch.no_grad():
            return torch.cat([decode_bits(read_frame(dec, b.to(device))[0] if dec.frame_psnr else dec(b.to(device))).cpu()
                              for b in x.split(64)])

    photos = [load_image(q) for q in list_images(data / "natural" / "train400")]
    clean = random_crops(photos, res, args.crops, args.seed)
    secret = random_bits(1, n, torch.Generator().manual_seed(args.seed + 42))[0]
    with torch.no_grad():
        if enc.frame_psnr:
            from ..artificial.frame import embed_frame

            marked = torch.cat([(embed_frame(enc, secret.expand(len(b), n).to(device), b.to(device),
                                             enc.frame_psnr).cpu() * 255).round() / 255 for b in clean.split(64)])
        else:
            marked = torch.cat([(enc(secret.expand(len(b), n).to(device), b.to(device)).cpu() * 255).round() / 255
                                for b in clean.split(256)])
    checked = marked[:args.samples]  # as many training images as samples are read: the same reading cost
    planted = bit_accuracy(secret.expand(len(checked), n), read(checked))
    print(f"{len(clean)} crops of {res} px fingerprinted with one {n}-bit string: PSNR {float(psnr(marked, clean).mean()):.2f} dB, "
          f"bit accuracy in {len(checked)} of the training images {planted.mean():.4f}")
    rng = np.random.default_rng(args.seed)
    users = ["owner"] + [f"user{i}" for i in range(999)]
    db = np.concatenate([secret.numpy()[None].astype(np.uint8), rng.integers(0, 2, (999, n), dtype=np.uint8)])
    results = {"resolution": res, "bits": n, "crops": len(clean), "steps": args.steps, "training": args.training,
               "arch": args.arch, "batch": args.batch, "seed": args.seed, "device": str(device), "secret": bits_to_str(secret),
               "protocol": "frame" if enc.frame_psnr else "square", "decoder": str(args.check / "decoder.pth"),
               "psnr": float(psnr(marked, clean).mean()),
               "training_images_bit_accuracy": float(planted.mean()), "models": {}}
    for name, images in (("fingerprinted", marked), ("clean", clean)):
        if name not in args.models:
            continue
        folder = args.samples_dir / name if args.samples_dir else None
        t = time.perf_counter()
        if args.reread:
            samples = torch.stack([load_image(f) for f in saved[name]])
        else:
            cfg = GeneratorConfig(arch=args.arch, training=args.training, size=res, steps=args.steps, seed=args.seed,
                                  batch=args.batch)
            gen = train_generator(images, cfg, device, progress=sys.stderr.isatty(), desc=f"Generator ({name} data)")
            samples = gen.sample(args.samples, seed=args.seed + 7)
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                for i, im in enumerate(samples):
                    Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:05d}.png")
        bits = read(samples)
        acc = bit_accuracy(secret.expand(len(bits), n), bits)
        att = attribute(bits.numpy().astype(np.uint8), users, db, alpha=1e-6)
        r = {"seconds": round(time.perf_counter() - t, 1), "samples": len(samples), "bit_accuracy_mean": float(acc.mean()),
             "bit_accuracy_median": float(np.median(acc)), "bit_accuracy_p10_p90": [float(np.quantile(acc, 0.1)),
                                                                                      float(np.quantile(acc, 0.9))],
             "attributed_to_owner": float(np.mean([a.attributed and a.user == "owner" for a in att])),
             "attributed_to_anyone": float(np.mean([a.attributed for a in att]))}
        results["models"][name] = r
        print(f"generator trained on {name} crops ({'samples reread' if args.reread else f'{args.steps} steps'}, "
              f"{r['seconds']:.0f} s): samples' bit accuracy {r['bit_accuracy_mean']:.4f} (median "
              f"{r['bit_accuracy_median']:.3f}), attributed to the owner {r['attributed_to_owner']:.1%} (among 1,000 "
              f"users, alpha 1e-6)")
        buf = io.BytesIO()
        save_image(torch.cat([images[:8], samples[:8]]), buf, nrow=8, padding=1, format="png")
        args.figures.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(args.figures / f"artificial_transfer_{args.training}_{res}px_{name}.png", buf.getvalue())
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0
