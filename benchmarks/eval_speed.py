#!/usr/bin/env python3
"""Images per second of DIF evaluation on CPU, next to the residual extractor's own forward pass.

For each extractor (the shipped DnCNN-17, or one with random weights, which costs the same, when
checks/denoiser/ holds none; the wavelet and high-pass filters) it times (a) the extractor alone on pre-cropped tensors and
(b) the whole evaluation path (decode, crop, extract, correlate). Also reports the machine's
fp32 matmul GFLOP/s and the DnCNN's achieved GFLOP/s.

    python benchmarks/eval_speed.py [--images 20] [--crop 256]
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _common import matmul_gflops, workload_dir


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--images", type=int_in(1, 100_000), default=10, help="images per class")
    p.add_argument("--crop", type=int_in(16, 356), default=256, help="centre crop (the workload images are 356 px)")
    p.add_argument("--batch", type=int_in(1, 1024), default=8)
    args = p.parse_args(argv)

    import torch

    from dif.data import center_crop, compute_residuals, find_labelled, load_image
    from dif.extractors import DNCNN_PAD, SHIPPED_DNCNN, DnCNN, DnCNNExtractor, build_extractor
    from dif.detect import Detector

    crop = (args.crop, args.crop)
    out = {"threads": torch.get_num_threads(), "matmul_gflops": round(matmul_gflops(), 1), "crop": args.crop}
    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images))
        n = len(ds.paths)
        imgs = torch.stack([center_crop(load_image(p), crop) for p in ds.paths])
        det = Detector(torch.randn(1, 3, *crop), 0.0, 0.01)
        dncnn = build_extractor("dncnn") if SHIPPED_DNCNN.is_file() else DnCNNExtractor(DnCNN())
        for name, ext in (("dncnn17", dncnn), ("wavelet", build_extractor("wavelet")),
                          ("wavelet-dwt", build_extractor("wavelet-dwt")), ("highpass", build_extractor("highpass"))):
            ext(imgs[:1])  # warm-up
            t0 = time.perf_counter()
            with torch.no_grad():
                for i in range(0, n, args.batch):
                    ext(imgs[i:i + args.batch])
            t_fwd = time.perf_counter() - t0
            t0 = time.perf_counter()
            cache = compute_residuals(ds.paths, ds.labels, ext, crop, batch_size=args.batch)
            det.correlate(cache.residuals)
            t_all = time.perf_counter() - t0
            row = {"forward_img_per_s": round(n / t_fwd, 2), "eval_img_per_s": round(n / t_all, 2),
                   "eval_over_forward": round(t_all / t_fwd, 3)}
            if name == "dncnn17":
                hw = (args.crop + 2 * DNCNN_PAD) ** 2
                flops = 2 * hw * 9 * (3 * 64 + 15 * 64 * 64 + 64 * 3)
                row["gflops"] = round(flops * n / t_fwd / 1e9, 1)
            out[name] = row
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    import sys

    from dif.cli import run_main

    sys.exit(run_main(main))
