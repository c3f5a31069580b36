#!/usr/bin/env python3
"""One-off probe: whole-photo fingerprints of each folder read clean, after blur 1 and after a centre
crop keeping 80% of the area, with the mean-colour border on every grid and with the edge fill on
grid 2 (``frame.EDGE_FILL_GRIDS``); the bits and the frame the reader took, per photo.

    python benchmarks/probes/fill_heldout.py DIR [DIR ...]
"""
import sys, numpy as np, torch
import dif.artificial.frame as frame
from dif.artificial.bits import bit_accuracy, decode_bits, random_bits
from dif.artificial.weights import DEFAULT_PAIR, load_model
from dif.data import list_images, load_image
from dif.robustness import get_perturbation
torch.set_num_threads(1)
enc = load_model(DEFAULT_PAIR / "encoder.pth", "encoder"); dec = load_model(DEFAULT_PAIR / "decoder.pth", "decoder")
conds = ["clean", "blur1", "crop0.894"]
for d in sys.argv[1:]:
    res = {}
    for k, path in enumerate(list_images(d)):
        x = load_image(path)[None]
        bits = random_bits(1, enc.fingerprint_length, torch.Generator().manual_seed(k))
        with torch.no_grad():
            y = (frame.embed_frame(enc, bits, x, enc.frame_psnr) * 255).round() / 255
            for c in conds:
                z = y if c == "clean" else get_perturbation(c)(y[0])[None]
                for fill, grids in (("mean", ()), ("edge", (2,))):
                    frame.EDGE_FILL_GRIDS = grids
                    l, f = frame.read_frame(dec, z)
                    res.setdefault((c, fill), []).append((float(bit_accuracy(bits, decode_bits(l))[0]), float(f[0])))
    for key, v in sorted(res.items()):
        a = np.array(v)
        print(d, key, f"{a[:,0].mean():.4f}", "fractions", np.round(a[:, 1], 3).tolist(), flush=True)
