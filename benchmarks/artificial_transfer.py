#!/usr/bin/env python3
"""Does an artificial fingerprint carry over from training images to a generator's images?

The paper's central claim (Yu et al., ICCV 2021), on this machine: random 32 px crops of the clean
photos in ../shared/data/natural/train400 are fingerprinted with one bit string by the shipped
encoder (checks/artificial), a small generator (dcgan: ConvTranspose up-sampling, trained as a GAN;
or the same generator trained as an autoencoder, ``--training ae``) is trained on them, and an
identical generator (same seed, same steps) on the clean crops. The shipped decoder reads the bits
of each model's samples: bit accuracy against the planted string (chance is 0.5), the share of
samples attributed at alpha 1e-6, and sample grids into repo_images/.

    python benchmarks/artificial_transfer.py [--steps 3000] [--crops 4000] [--training gan|ae] [--device cuda]
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    import numpy as np
    import torch

    from _common import shared_data
    from dif.artificial.bits import attribute, bit_accuracy, bits_to_str, decode_bits, random_bits
    from dif.artificial.train import psnr
    from dif.artificial.weights import load_model
    from dif.atomic import check_output_file, write_bytes_atomic, write_text_atomic
    from dif.cli import Parser, int_in, resolve_device
    from dif.data import list_images, load_image
    from dif.errors import DIFError
    from dif.generators import GeneratorConfig, random_crops, train_generator

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--check", type=Path, default=ROOT / "checks" / "artificial", help="encoder.pth + decoder.pth")
    p.add_argument("--steps", type=int_in(1, 10**7), default=3000)
    p.add_argument("--crops", type=int_in(64, 10**7), default=4000, help="training crops")
    p.add_argument("--samples", type=int_in(1, 10**6), default=500)
    p.add_argument("--training", choices=["gan", "ae"], default="gan")
    p.add_argument("--arch", choices=["dcgan", "upconv"], default="dcgan")
    p.add_argument("--seed", type=int_in(0, 2**31), default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--figures", type=Path, default=ROOT / "repo_images", help="sample grids go here")
    args = p.parse_args(argv)
    check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    data = shared_data()
    if data is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA)")
    enc = load_model(args.check / "encoder.pth", "encoder", device=device)
    dec = load_model(args.check / "decoder.pth", "decoder", device=device)
    res, n = enc.resolution, enc.fingerprint_length
    photos = [load_image(q) for q in list_images(data / "natural" / "train400")]
    clean = random_crops(photos, res, args.crops, args.seed)
    secret = random_bits(1, n, torch.Generator().manual_seed(args.seed + 42))[0]
    with torch.no_grad():
        marked = torch.cat([(enc(secret.expand(len(b), n).to(device), b.to(device)).cpu() * 255).round() / 255
                            for b in clean.split(256)])
        planted = bit_accuracy(secret.expand(len(marked), n), torch.cat(
            [decode_bits(dec(b.to(device))).cpu() for b in marked.split(256)]))
    print(f"{len(clean)} crops of {res} px fingerprinted with one {n}-bit string: PSNR {float(psnr(marked, clean).mean()):.2f} dB, "
          f"bit accuracy in the training images {planted.mean():.4f}")
    rng = np.random.default_rng(args.seed)
    users = ["owner"] + [f"user{i}" for i in range(999)]
    db = np.concatenate([secret.numpy()[None].astype(np.uint8), rng.integers(0, 2, (999, n), dtype=np.uint8)])
    results = {"resolution": res, "bits": n, "crops": len(clean), "steps": args.steps, "training": args.training,
               "arch": args.arch, "seed": args.seed, "device": str(device), "secret": bits_to_str(secret),
               "training_images_bit_accuracy": float(planted.mean()), "models": {}}
    from torchvision.utils import save_image

    for name, images in (("fingerprinted", marked), ("clean", clean)):
        cfg = GeneratorConfig(arch=args.arch, training=args.training, size=res, steps=args.steps, seed=args.seed)
        t = time.perf_counter()
        gen = train_generator(images, cfg, device, progress=sys.stderr.isatty(), desc=f"Generator ({name} data)")
        samples = gen.sample(args.samples, seed=args.seed + 7)
        with torch.no_grad():
            bits = torch.cat([decode_bits(dec(b.to(device))).cpu() for b in samples.split(256)])
        acc = bit_accuracy(secret.expand(len(bits), n), bits)
        att = attribute(bits.numpy().astype(np.uint8), users, db, alpha=1e-6)
        r = {"seconds": round(time.perf_counter() - t, 1), "bit_accuracy_mean": float(acc.mean()),
             "bit_accuracy_median": float(np.median(acc)), "bit_accuracy_p10_p90": [float(np.quantile(acc, 0.1)),
                                                                                      float(np.quantile(acc, 0.9))],
             "attributed_to_owner": float(np.mean([a.attributed and a.user == "owner" for a in att])),
             "attributed_to_anyone": float(np.mean([a.attributed for a in att]))}
        results["models"][name] = r
        print(f"generator trained on {name} crops ({args.steps} steps, {r['seconds']:.0f} s): samples' bit accuracy "
              f"{r['bit_accuracy_mean']:.4f} (median {r['bit_accuracy_median']:.3f}), attributed to the owner "
              f"{r['attributed_to_owner']:.1%} (among 1,000 users, alpha 1e-6)")
        buf = io.BytesIO()
        save_image(torch.cat([images[:16], samples[:16]]), buf, nrow=16, padding=1, format="png")
        args.figures.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(args.figures / f"artificial_transfer_{args.training}_{name}.png", buf.getvalue())
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
