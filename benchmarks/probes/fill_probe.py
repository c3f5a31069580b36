#!/usr/bin/env python3
"""One-off probe: after a centre crop keeping 80% of the area, does the reader's border fill
(each photo's mean colour, or its edge pixels repeated) read the bits of whole-photo
fingerprints better, per grid? On the choosing photos (LIVE1, BSD68).

    python benchmarks/probes/fill_probe.py DIR [DIR ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import dif.artificial.frame as frame
from dif.artificial.bits import bit_accuracy, decode_bits, random_bits
from dif.artificial.weights import DEFAULT_PAIR, load_model
from dif.data import list_images, load_image
from dif.robustness import get_perturbation

mean_uncrop = frame.uncrop


def edge_uncrop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    if fraction >= 1:
        return x
    h, w = x.shape[-2:]
    fh, fw = round(h / fraction), round(w / fraction)
    top, left = (fh - h) // 2, (fw - w) // 2
    return F.pad(x, (left, fw - w - left, top, fh - h - top), mode="replicate")


def main() -> None:
    torch.set_num_threads(1)
    enc = load_model(DEFAULT_PAIR / "encoder.pth", "encoder")
    dec = load_model(DEFAULT_PAIR / "decoder.pth", "decoder")
    crop = get_perturbation("crop0.894")
    for d in sys.argv[1:]:
        rows = {}
        for k, path in enumerate(list_images(Path(d))):
            x = load_image(path)[None]
            bits = random_bits(1, enc.fingerprint_length, torch.Generator().manual_seed(k))
            with torch.no_grad():
                y = (frame.embed_frame(enc, bits, x, enc.frame_psnr) * 255).round() / 255
                z = crop(y[0])[None]
                g = frame.grid_for(*x.shape[-2:], enc.resolution)
                for name, fn in (("mean", mean_uncrop), ("edge", edge_uncrop)):
                    frame.uncrop = fn
                    acc = float(bit_accuracy(bits, decode_bits(frame.read_frame(dec, z)[0]))[0])
                    rows.setdefault((g, name), []).append(acc)
            frame.uncrop = mean_uncrop
        for (g, name), v in sorted(rows.items()):
            print(f"{d} grid {g} ({len(v)} photos) fill {name}: bits after crop {np.mean(v):.4f}", flush=True)


if __name__ == "__main__":
    main()
