#!/usr/bin/env python3
"""Images per second of DIF evaluation on CPU, next to the residual extractor's own forward pass.

For each extractor (the shipped DnCNN-17, or one with random weights, which costs the same, when
checks/denoiser/ holds none; the wavelet and high-pass filters) it times (a) the extractor alone on pre-cropped tensors and
(b) the whole evaluation path (decode, crop, extract, correlate). The DnCNN is timed in every
precision of ``eval_dif.py --precision``: ``dncnn17`` the fp32 reference, ``dncnn17-folded``
BatchNorm folded into the convolutions (fp32), ``dncnn17-bf16`` folded and bfloat16. Also reports
the machine's fp32 matmul GFLOP/s and the DnCNN's achieved GFLOP/s.

With ``--auc-check SHARED_DATA`` it also scores held-out images with every fingerprint the DIF
authors released (13 generators; on their 3 sample sets and the 5 CNNDetection sets: 104 pairs),
once with fp32 residuals and once with each faster path's, and prints the largest AUC difference
and how many images change side at the fingerprint's own centres.

With ``--int8-probe SHARED_DATA`` it also quantises the DnCNN to int8 with PyTorch's own eager
quantisation (BatchNorm folded, convolution + ReLU fused, per-channel weights, activation ranges
calibrated on 16 clean LIVE1 crops) and prints its forward speed and how far its residual is from
fp32's on 4 other LIVE1 crops (relative error of the residual's norm). With ``--winograd-probe`` it
times the folded network with NNPACK's Winograd convolutions instead of oneDNN's direct ones.

    python benchmarks/eval_speed.py [--images 20] [--crop 256] [--auc-check ../shared/data]
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _common import matmul_gflops, workload_dir

FAST = ("folded", "bf16")  # the faster paths of --precision, each against the fp32 reference


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--images", type=int_in(1, 100_000), default=10, help="images per class")
    p.add_argument("--crop", type=int_in(16, 356), default=256, help="centre crop (the workload images are 356 px)")
    p.add_argument("--batch", type=int_in(1, 1024), default=8)
    p.add_argument("--auc-check", type=Path, default=None, metavar="SHARED_DATA",
                   help="also compare the fp32 scores of the authors' fingerprints on held-out images with each "
                        "faster path's")
    p.add_argument("--int8-probe", type=Path, default=None, metavar="SHARED_DATA",
                   help="also time an int8 DnCNN and measure its residual error (calibrated on LIVE1 crops)")
    p.add_argument("--winograd-probe", action="store_true",
                   help="also time the folded DnCNN with every convolution run by NNPACK (Winograd F(6x6, 3x3): "
                        "fewer multiplications, fp32) and measure its residual error")
    args = p.parse_args(argv)
    if args.int8_probe is not None and not (args.int8_probe / "natural" / "live1").is_dir():
        from dif.errors import DIFError

        raise DIFError(f"--int8-probe {args.int8_probe}: no natural/live1 there (give ../shared/data)")
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
        fast = {pr: (build_extractor("dncnn", precision=pr) if SHIPPED_DNCNN.is_file()
                     else DnCNNExtractor(DnCNN()).with_precision(pr)) for pr in FAST}
        for name, ext in (("dncnn17", dncnn), *((f"dncnn17-{pr}", e) for pr, e in fast.items()),
                          ("wavelet", build_extractor("wavelet")),
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
    for pr in FAST:
        out[f"{pr}_speedup_forward"] = round(out[f"dncnn17-{pr}"]["forward_img_per_s"]
                                             / out["dncnn17"]["forward_img_per_s"], 2)
        out[f"{pr}_eval_over_fp32_forward"] = round(out[f"dncnn17-{pr}"]["eval_img_per_s"]
                                                    / out["dncnn17"]["forward_img_per_s"], 2)
    if args.int8_probe is not None:
        out["int8_probe"] = int8_probe(args.int8_probe / "natural" / "live1", args.crop, args.batch)
    if args.winograd_probe:
        out["winograd_probe"] = winograd_probe(args.crop, args.batch)
    if args.auc_check is not None:
        out["auc_check"] = auc_check(args.auc_check, args.batch)
    print(json.dumps(out, indent=2))
    return 0


def _dncnn_net():
    """The shipped DnCNN-17 in eval mode, or one with random weights (the same cost) when checks/ has none."""
    from dif.extractors import SHIPPED_DNCNN, DnCNN, load_dncnn

    return load_dncnn(SHIPPED_DNCNN)[0].eval() if SHIPPED_DNCNN.is_file() else DnCNN().eval()


def int8_probe(photos: Path, crop: int, batch: int) -> dict:
    """The shipped DnCNN in int8 (eager post-training quantisation, x86 backend): forward speed
    against fp32 (folded) and the residual's relative error. The DnCNN's activations carry the
    image itself while its output is a residual a hundred times smaller, so 8-bit activations
    lose the residual."""
    import copy
    import warnings

    import torch
    import torch.ao.quantization as tq
    from torch import nn

    from dif.data import center_crop, list_images, load_image
    from dif.extractors import DNCNN_PAD
    from dif.extractors.dncnn import fold_batchnorm

    warnings.filterwarnings("ignore", module="torch.ao")
    net = _dncnn_net()
    fused = fold_batchnorm(net.dncnn)
    blocks, mods = [], [copy.deepcopy(m) for m in fused]
    for m in mods:
        if isinstance(m, nn.ReLU):
            m.inplace = False
    i = 0
    while i < len(mods):  # conv (+ ReLU) blocks, each fused for the quantised kernels
        if i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU):
            blocks.append(tq.fuse_modules(nn.Sequential(mods[i], mods[i + 1]), [["0", "1"]]))
            i += 2
        else:
            blocks.append(nn.Sequential(mods[i]))
            i += 1
    q = nn.Sequential(tq.QuantStub(), *blocks, tq.DeQuantStub()).eval()
    torch.backends.quantized.engine = "x86"
    q.qconfig = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=False),
                           weight=tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8,
                                                                         qscheme=torch.per_channel_symmetric))
    tq.prepare(q, inplace=True)
    pad = lambda x: nn.functional.pad(x, (DNCNN_PAD,) * 4)  # noqa: E731
    imgs = [center_crop(load_image(p), (crop, crop)) for p in list_images(photos)[:20]]
    with torch.no_grad():
        for x in imgs[:16]:
            q(pad(x[None]))
        tq.convert(q, inplace=True)
        errs = []
        for x in imgs[16:]:
            ref = fused(pad(x[None]))
            errs.append(float((q(pad(x[None])) - ref).norm() / ref.norm()))
        xb = pad(torch.stack((imgs * batch)[:batch]))
        times = {}
        for name, f, x in (("fp32_folded", fused.to(memory_format=torch.channels_last),
                            xb.contiguous(memory_format=torch.channels_last)), ("int8", q, xb)):
            f(x)
            t0 = time.perf_counter()
            f(x)
            times[name] = time.perf_counter() - t0
    out = {"residual_relative_error": round(sum(errs) / len(errs), 3),
           "int8_speedup_over_folded_fp32": round(times["fp32_folded"] / times["int8"], 2)}
    print(f"int8: residual off by {out['residual_relative_error']:.0%} of its norm; "
          f"{out['int8_speedup_over_folded_fp32']}x the folded fp32 forward", flush=True)
    return out


def winograd_probe(crop: int, batch: int) -> dict:
    """The folded DnCNN with its convolutions run by NNPACK, PyTorch's own Winograd path (it does
    not choose it on its own where oneDNN is present): 5x fewer multiplications per 3x3 convolution,
    still fp32, against oneDNN's direct convolution (channels-last) of ``--precision folded``."""
    import torch
    from torch import nn

    from dif.extractors import DNCNN_PAD
    from dif.extractors.dncnn import fold_batchnorm

    if not torch._nnpack_available():
        return {"available": False}
    net = _dncnn_net()
    folded = fold_batchnorm(net.dncnn)
    layers = [(m.weight.detach().contiguous(), m.bias.detach() if m.bias is not None else torch.zeros(m.out_channels))
              if isinstance(m, nn.Conv2d) else None for m in folded]

    def nnpack(x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = torch.relu(x) if layer is None else torch._nnpack_spatial_convolution(x, layer[0], layer[1], [1, 1],
                                                                                      [1, 1])
        return x

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, crop + 2 * DNCNN_PAD, crop + 2 * DNCNN_PAD, generator=g)
    times = {}
    with torch.no_grad():
        ref = net.double().dncnn(x.double()).float()
        runs = {"folded": (folded.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)),
                "nnpack": (nnpack, x)}
        outs = {}
        for name, (f, xin) in runs.items():
            f(xin)
            t0 = time.perf_counter()
            outs[name] = f(xin)
            times[name] = time.perf_counter() - t0
    out = {"available": True, "nnpack_speedup_over_folded": round(times["folded"] / times["nnpack"], 2)}
    for name, y in outs.items():
        out[f"{name}_residual_relative_error_vs_fp64"] = float(f"{float((y - ref).norm() / ref.norm()):.2e}")
    print(f"winograd (NNPACK): {out['nnpack_speedup_over_folded']}x the folded forward, residual off by "
          f"{out['nnpack_residual_relative_error_vs_fp64']:.1e} of its norm", flush=True)
    return out


def auc_check(shared: Path, batch: int) -> dict:
    """fp32 against each faster path's residuals under every released fingerprint, on every held-out set."""
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
    exts = {pr: build_extractor("dncnn", precision=pr) for pr in ("fp32",) + FAST}
    rows: list[dict] = []
    stats = {pr: {"d_auc": [], "flips": 0, "worst": 0.0} for pr in FAST}
    n_scores = 0
    for name, folder in sets.items():
        ds = find_labelled(folder)
        res = {k: compute_residuals(ds.paths, ds.labels, e, crop, batch_size=batch) for k, e in exts.items()}
        y = res["fp32"].labels.numpy()
        for c, m in zip(checks, methods):
            det = m.detector
            s = {k: det.oriented(det.correlate(r.residuals)) for k, r in res.items()}
            met = {k: binary_metrics(v, y, m.threshold) for k, v in s.items()}
            row = {"data": name, "fingerprint": c.name, "auc_fp32": round(met["fp32"]["auc"], 4),
                   "acc_fp32": met["fp32"]["accuracy"]}
            n_scores += len(y)
            for pr in FAST:
                st = stats[pr]
                side = (s["fp32"] > m.threshold) != (s[pr] > m.threshold)
                st["d_auc"].append(abs(met[pr]["auc"] - met["fp32"]["auc"]))
                st["flips"] += int(side.sum())
                gap = abs(det.mu_fake - det.mu_real) + 1e-12
                st["worst"] = max(st["worst"], float(np.abs(s[pr] - s["fp32"]).max() / gap))
                row.update({f"auc_{pr}": round(met[pr]["auc"], 4), f"acc_{pr}": met[pr]["accuracy"],
                            f"changed_side_{pr}": int(side.sum())})
            rows.append(row)
        last = rows[-len(checks):]
        print(f"{name}: " + "; ".join(f"{pr} dAUC {min(r[f'auc_{pr}'] - r['auc_fp32'] for r in last):+.4f} .. "
                                      f"{max(r[f'auc_{pr}'] - r['auc_fp32'] for r in last):+.4f}" for pr in FAST),
              flush=True)
    out: dict = {"pairs": len(rows), "scores": n_scores, "rows": rows}
    for pr, st in stats.items():
        out[pr] = {"max_abs_auc_diff": round(max(st["d_auc"]), 4), "mean_abs_auc_diff": round(float(np.mean(st["d_auc"])), 5),
                   "images_changing_side": st["flips"], "max_score_shift_over_centre_gap": round(st["worst"], 6)}
    return out


if __name__ == "__main__":
    import sys

    from dif.cli import run_main

    sys.exit(run_main(main))
