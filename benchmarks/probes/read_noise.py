#!/usr/bin/env python3
"""One-off probe: whole-photo fingerprints read with seeded Gaussian noise added to the reading
canvas, either for choosing the frame only ("select"; "coarse": only the first, coarse choice) or for the choice and the bits ("all"),
clean and after JPEG 75, halving, blur 1 and a centre crop keeping 80% of the area; unmarked
photos read too (their bits must stay at chance).

    python benchmarks/probes/read_noise.py SIGMAS MODES DIR[:STEP] [...]   (SIGMAS e.g. 0.02,0.05; MODES select,coarse,all;
        STEP: every STEP-th photo; CONDS=clean,crop0.894 picks the conditions, MEAN_FILL=1 fills
        every grid's border with the mean colour)
"""
import os, sys, time, numpy as np, torch
import dif.artificial.frame as frame
from dif.artificial.bits import bit_accuracy, decode_bits, random_bits
from dif.artificial.weights import DEFAULT_PAIR, load_model
from dif.data import list_images, load_image
from dif.robustness import get_perturbation

torch.set_num_threads(1)
enc = load_model(DEFAULT_PAIR / "encoder.pth", "encoder"); dec = load_model(DEFAULT_PAIR / "decoder.pth", "decoder")
conds = os.environ.get("CONDS", "clean,jpeg75,resize0.5,blur1,crop0.894,unmarked").split(",")
if os.environ.get("MEAN_FILL"):  # the mean colour on every grid
    frame.EDGE_FILL_GRIDS = ()


def read(canvas, sigma, mode):
    """(logits, fractions, grids) with noise of ``sigma`` on the canvas."""
    g = torch.Generator().manual_seed(0)
    noisy = canvas + sigma * torch.randn(canvas.shape, generator=g) if sigma > 0 else canvas
    best = None
    for gr in frame.READ_GRIDS:
        for f in frame.CROP_SEARCH:
            t, w = frame.frame_tiles(dec, noisy, f, gr)
            conf = frame.agreement(t, w)
            if mode in ("select", "coarse") and sigma > 0:
                t, w = frame.frame_tiles(dec, canvas, f, gr)
            lg = (t * w[:, None]).sum(1) / w.sum()
            if best is None:
                best = [lg, conf, torch.full_like(conf, f), torch.full_like(conf, gr)]
            else:
                b = conf > best[1]
                best = [torch.where(b[:, None], lg, best[0]), torch.where(b, conf, best[1]),
                        torch.where(b, torch.full_like(conf, f), best[2]), torch.where(b, torch.full_like(conf, gr), best[3])]
    for i in range(len(canvas)):  # read_frame's refinement around each photo's choice
        gr, f0 = int(best[3][i]), float(best[2][i])
        if mode == "coarse" and sigma > 0:  # refine on the photo itself: its confidence at the choice
            t, w = frame.frame_tiles(dec, canvas[i:i + 1], f0, gr)
            best[1][i] = float(frame.agreement(t, w)[0])
        for f in (round(f0 + d, 4) for d in frame.REFINE):
            if not min(frame.CROP_SEARCH) - 0.01 <= f < 1:
                continue
            t, w = frame.frame_tiles(dec, (canvas if mode == "coarse" else noisy)[i:i + 1], f, gr)
            conf = float(frame.agreement(t, w)[0])
            if conf > best[1][i]:
                if mode == "select" and sigma > 0:
                    t, w = frame.frame_tiles(dec, canvas[i:i + 1], f, gr)
                best[0][i], best[1][i], best[2][i] = (t[0] * w[:, None]).sum(0) / w.sum(), conf, f
    return best[0], best[2], best[3]


sigmas = [float(s) for s in sys.argv[1].split(",")]
modes = sys.argv[2].split(",")
variants = [(0.0, "all")] + [(s, m) for s in sigmas if s > 0 for m in modes]
canvas = frame.ReadCanvas(dec.resolution)
for spec in sys.argv[3:]:
    d, _, step = spec.partition(":")
    t0 = time.time()
    paths = list_images(d)[::int(step or 1)]
    bits = random_bits(len(paths), enc.fingerprint_length, torch.Generator().manual_seed(0))
    marked, clean = [], []
    with torch.no_grad():
        for k, p in enumerate(paths):
            x = load_image(p)[None]
            clean.append(x[0])
            marked.append(((frame.embed_frame(enc, bits[k:k + 1], x, enc.frame_psnr) * 255).round() / 255)[0])
        for c in conds:
            if c == "unmarked":
                xs = clean
            else:
                xs = marked if c == "clean" else [get_perturbation(c)(y) for y in marked]
            cv = torch.stack([canvas(y) for y in xs])
            for s, m in variants:
                l, f, gr = read(cv, s, m)
                acc = np.asarray(bit_accuracy(bits, decode_bits(l)))
                print(f"{d.rstrip('/').split('/')[-2:]} {c:10s} sigma={s:<5} {m:6s} bits={acc.mean():.4f} "
                      f"min={acc.min():.3f} uncropped={(f >= 0.999).float().mean():.2f} grids={np.bincount(gr.int().numpy(), minlength=5)[2:].tolist()}",
                      flush=True)
    print(d, f"{time.time() - t0:.0f}s", flush=True)
