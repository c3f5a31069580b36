#!/usr/bin/env python3
"""How much of a clean photo's own content lands in each extractor's residual (held-out photos).

    python benchmarks/residual_quality.py [--extractors dncnn,wavelet,wavelet-dwt,highpass]
        [--photos DIR] [--crop 256] [--json OUT.json]
    python benchmarks/residual_quality.py --extractors dncnn@bf16,dncnn:STUDENT.pt --against dncnn@fp32

A residual extractor should return the noise and the generator's pattern, not the photo. For the
centre crop of each clean photo (default: LIVE1, held out from DnCNN training) this reports the
RMS of the residual (in 8-bit grey levels, per-image mean removed) split into luminance (the mean
of the three channels) and chroma (what is left): lower is less of the photo's own content in the
correlation with a fingerprint. Compare denoisers of one kind with it (a filter that removes
less leaks less but also passes less of the pattern). This is how the grey-trained DnCNN's fault
showed: trained on grey photos only, it called every difference between the colour channels
noise (29 LIVE1 photos: chroma 3.7 and luminance 2.0 grey levels, against 1.3 and 0.6 after
colour training), and it detected worse with the authors' fingerprints (official_fingerprints.py).
It uses no detection data, so it can guide a denoiser recipe without choosing it on the detection
benchmark.

``--against SPEC`` adds how far each extractor's residual is from that one's on the same crops:
the RMS of the difference over the RMS of the reference, per photo, averaged (the error a faster
path or a distilled network brings to the residual a fingerprint is correlated with). An entry
``SPEC@PRECISION`` computes in ``fp32`` (the default), ``folded`` or ``bf16``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _common import shared_data

from dif.atomic import write_text_atomic


def leak(residual) -> tuple[float, float]:
    """(luminance RMS, chroma RMS) of a 3 x H x W residual, x 255, after removing its mean."""
    r = residual - residual.mean((1, 2), keepdim=True)
    lum = r.mean(0, keepdim=True)
    return float(lum.pow(2).mean().sqrt()) * 255, float((r - lum).pow(2).mean().sqrt()) * 255


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--extractors", default="dncnn,wavelet,wavelet-dwt,highpass")
    p.add_argument("--photos", type=Path, default=None, help="clean photos (default: ../shared/data/natural/live1)")
    p.add_argument("--crop", type=int_in(16, 8192), default=256)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--against", default=None, help="a reference extractor: each residual's relative distance from its")
    args = p.parse_args(argv)
    import logging

    from dif.atomic import check_output_file

    from dif.data import compute_residuals, list_images
    from dif.extractors import build_extractor
    from dif.errors import DIFError

    folder = args.photos
    if folder is None:
        root = shared_data()
        if root is None:
            raise DIFError("../shared/data not found (set DIF_SHARED_DATA or give --photos)")
        folder = root / "natural" / "live1"
    check_output_file(args.json, "--json")

    def build(entry: str):
        spec, _, precision = entry.partition("@")
        return entry, build_extractor(spec, precision=precision or "fp32")

    extractors = [build(e) for e in args.extractors.split(",")]
    reference = build(args.against) if args.against else None
    paths = list_images(folder)
    logging.getLogger("dif").setLevel(logging.ERROR)  # photos smaller than --crop are skipped quietly; the count is printed

    def residuals(ext):
        cache = compute_residuals(paths, [0] * len(paths), ext, (args.crop, args.crop))  # skips smaller photos
        if not len(cache):
            raise DIFError(f"no readable photo in {folder} is at least {args.crop}x{args.crop}")
        return cache.residuals

    ref = residuals(reference[1]) if reference else None
    table = {}
    for name, ext in extractors:
        res = residuals(ext)
        lum, chroma = np.array([leak(r) for r in res]).T
        table[name] = {"luma": float(lum.mean()), "chroma": float(chroma.mean())}
        if ref is not None:
            d = (res - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1).clamp_min(1e-12)
            table[name]["relative_error"] = float(d.mean())
    n = len(res)
    print(f"{n} photos of {folder}, centre {args.crop}x{args.crop}; residual RMS in grey levels (x255)"
          + (f"; relative error against {args.against}" if reference else ""))
    print("| extractor | luminance | chroma |" + (" relative error |" if reference else ""))
    print("|---|---|---|" + ("---|" if reference else ""))
    for spec, row in table.items():
        print(f"| `{spec}` | {row['luma']:.2f} | {row['chroma']:.2f} |"
              + (f" {row['relative_error']:.4f} |" if reference else ""))
    if args.json:
        write_text_atomic(args.json, json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
