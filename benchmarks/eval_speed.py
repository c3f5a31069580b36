#!/usr/bin/env python3
"""Images per second of DIF evaluation on CPU, next to the residual extractor's own forward pass.

For each extractor (the shipped DnCNN-17, or one with random weights, which costs the same, when
checks/denoiser/ holds none; the wavelet and high-pass filters) it times (a) the extractor alone on pre-cropped tensors and
(b) the whole evaluation path (decode, crop, extract, correlate). The DnCNN is timed in both
precisions: ``dncnn17`` the fp32 reference, ``dncnn17-bf16`` BatchNorm folded and bfloat16 (what
``eval_dif.py --precision auto`` uses on a CPU with native bfloat16). Also reports the machine's
fp32 matmul GFLOP/s and the DnCNN's achieved GFLOP/s.

With ``--auc-check SHARED_DATA`` it also scores held-out images with every fingerprint the DIF
authors released (13 generators; on their 3 sample sets and the 5 CNNDetection sets: 104 pairs),
once with fp32 residuals and once with bf16 ones, and prints the largest AUC difference and how
many images change side at the fingerprint's own centres.

    python benchmarks/eval_speed.py [--images 20] [--crop 256] [--auc-check ../shared/data]
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
    p.add_argument("--auc-check", type=Path, default=None, metavar="SHARED_DATA",
                   help="also compare fp32 and bf16 scores of the authors' fingerprints on held-out images")
    args = p.parse_args(argv)
    if args.auc_check is not None and not (args.auc_check / "dif_official" / "checks").is_dir():
        from dif.errors import DIFError

        raise DIFError(f"--auc-check {args.auc_check}: no dif_official/checks there (give ../shared/data)")

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
        fast = (build_extractor("dncnn", precision="bf16") if SHIPPED_DNCNN.is_file()
                else DnCNNExtractor(DnCNN()).with_precision("bf16"))
        for name, ext in (("dncnn17", dncnn), ("dncnn17-bf16", fast), ("wavelet", build_extractor("wavelet")),
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
            if name.startswith("dncnn17"):
                hw = (args.crop + 2 * DNCNN_PAD) ** 2
                flops = 2 * hw * 9 * (3 * 64 + 15 * 64 * 64 + 64 * 3)
                row["gflops"] = round(flops * n / t_fwd / 1e9, 1)
            out[name] = row
    if "dncnn17-bf16" in out:
        out["bf16_speedup_forward"] = round(out["dncnn17-bf16"]["forward_img_per_s"] / out["dncnn17"]["forward_img_per_s"], 2)
        out["bf16_eval_over_fp32_forward"] = round(out["dncnn17-bf16"]["eval_img_per_s"]
                                                   / out["dncnn17"]["forward_img_per_s"], 2)
    if args.auc_check is not None:
        out["auc_check"] = auc_check(args.auc_check, args.batch)
    print(json.dumps(out, indent=2))
    return 0


def auc_check(shared: Path, batch: int) -> dict:
    """fp32 against bf16 residuals under every released fingerprint, on every held-out set."""
    import numpy as np

    from dif.data import compute_residuals, find_labelled
    from dif.extractors import build_extractor
    from dif.methods import load_method
    from dif.metrics import binary_metrics

    sets = {f"dif/{g}": shared / "dif_official" / "samples" / g for g in ("dalle_2", "glide", "sd14")}
    sets.update({f"cnndetection/{g}": shared / "cnndetection" / g for g in ("crn", "deepfake", "imle", "san",
                                                                              "seeingdark")})
    checks = sorted(p for p in (shared / "dif_official" / "checks").iterdir() if p.is_dir())
    methods = [load_method(c) for c in checks]
    crop = methods[0].crop
    exts = {"fp32": build_extractor("dncnn"), "bf16": build_extractor("dncnn", precision="bf16")}
    rows, d_auc, flips, n_scores, worst = [], [], 0, 0, 0.0
    for name, folder in sets.items():
        ds = find_labelled(folder)
        res = {k: compute_residuals(ds.paths, ds.labels, e, crop, batch_size=batch) for k, e in exts.items()}
        y = res["fp32"].labels.numpy()
        for c, m in zip(checks, methods):
            det = m.detector
            s = {k: det.oriented(det.correlate(r.residuals)) for k, r in res.items()}
            met = {k: binary_metrics(v, y, m.threshold) for k, v in s.items()}
            d = abs(met["bf16"]["auc"] - met["fp32"]["auc"])
            side = (s["fp32"] > m.threshold) != (s["bf16"] > m.threshold)
            d_auc.append(d)
            flips += int(side.sum())
            n_scores += len(y)
            rel = float(np.abs(s["bf16"] - s["fp32"]).max() / (abs(det.mu_fake - det.mu_real) + 1e-12))
            worst = max(worst, rel)
            rows.append({"data": name, "fingerprint": c.name, "auc_fp32": round(met["fp32"]["auc"], 4),
                         "auc_bf16": round(met["bf16"]["auc"], 4), "acc_fp32": met["fp32"]["accuracy"],
                         "acc_bf16": met["bf16"]["accuracy"], "changed_side": int(side.sum())})
        print(f"{name}: max |dAUC| {max(r['auc_bf16'] - r['auc_fp32'] for r in rows[-len(checks):]):+.4f} .. "
              f"{min(r['auc_bf16'] - r['auc_fp32'] for r in rows[-len(checks):]):+.4f}", flush=True)
    return {"pairs": len(rows), "max_abs_auc_diff": round(max(d_auc), 4), "mean_abs_auc_diff": round(float(np.mean(d_auc)), 5),
            "images_changing_side": flips, "scores": n_scores,
            "max_score_shift_over_centre_gap": round(worst, 4), "rows": rows}


if __name__ == "__main__":
    import sys

    from dif.cli import run_main

    sys.exit(run_main(main))
