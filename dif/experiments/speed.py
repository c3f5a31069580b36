"""Speed (``benchmarks/speed.py``): DIF training, DIF evaluation, DeepFeatureX training, on the
CPU, each on CNNDetection images of the shared data (synthetic ones of the same size without it).

- ``run_train``: seconds per epoch with the residuals cached (computed once), and what the authors'
  loop would pay by re-running a DnCNN-17 on every batch; with an ``auto`` spec, the whole fit.
- ``run_eval``: images per second of each extractor's forward pass alone and of the whole
  evaluation path (decode, crop, extract, correlate), the DnCNN in every precision, against the
  machine's fp32 matmul rate.
- ``run_deepfeaturex``: decoding against training time of the 2-class DeepFeatureX.
- ``run_embed``: photos per second of ``python -m dif.artificial embed`` and ``detect`` (the
  default whole-photo pair) on a folder of photos at their own size (default: the 1024 px faces).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from ..choose import parse_auto
from ..config import DIFConfig
from ..data import center_crop, compute_residuals, find_labelled, load_image, training_residuals
from ..detect import Detector
from ..extractors import DNCNN_PAD, SHIPPED_DNCNN, DnCNN, DnCNNExtractor, build_extractor
from ..fingerprint import train_fingerprint
from ..methods import get_method
from .common import matmul_gflops, workload_dir

FAST = ("folded", "bf16")  # the faster precisions of the DnCNN, each against the fp32 reference


def run_train(args) -> int:
    """DIF training speed on ``args.images`` images per class."""
    DIFConfig(epochs=args.epochs, crop=args.crop).validate()  # the crop grid, before any work
    if parse_auto(args.extractor) is not None:
        return time_auto(args)
    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images))
        crop = (args.crop, args.crop)
        cfg = DIFConfig(epochs=args.epochs, crop=args.crop, train_precision=args.train_precision,
                        extractor_precision=args.extractor_precision)
        ext = build_extractor(args.extractor, precision=cfg.extractor_precision)
        if args.augment is not None:
            cfg.augment = args.augment
        t0 = time.perf_counter()
        cache = training_residuals(ds.paths, ds.labels, ext, crop, augment=cfg.augment, seed=cfg.seed,
                                   kinds=cfg.augment_kinds).cache
        t_res = time.perf_counter() - t0
        # What the authors' loop spends per epoch: the DnCNN-17 forward on every image, every batch.
        dncnn = DnCNNExtractor(DnCNN())
        t0 = time.perf_counter()
        compute_residuals(ds.paths, ds.labels, dncnn, crop)
        t_dncnn = time.perf_counter() - t0

    t0 = time.perf_counter()
    state = train_fingerprint(cache.residuals, cache.labels, cfg)
    t_train = time.perf_counter() - t0
    t_epoch_fp32 = t_train / args.epochs
    if args.train_precision != "fp32":  # their loop's U-Net runs in fp32: time a few of its epochs
        short = min(args.epochs, 5)
        t0 = time.perf_counter()
        train_fingerprint(cache.residuals, cache.labels, DIFConfig(**dict(cfg.to_dict(), epochs=short,
                                                                          train_precision="fp32")))
        t_epoch_fp32 = (time.perf_counter() - t0) / short
    res = {
        "images": len(ds.paths), "residuals": len(cache), "augment": cfg.augment, "crop": args.crop, "epochs": args.epochs, "steps": len(state.loss),
        "threads": torch.get_num_threads(), "extractor": ext.spec, "train_precision": args.train_precision,
        "extractor_precision": args.extractor_precision, "residuals_s": round(t_res, 2), "train_s": round(t_train, 2),
        "s_per_epoch": round(t_train / args.epochs, 3), "total_s": round(t_res + t_train, 2),
        "dncnn17_pass_s": round(t_dncnn, 2),
        "fp32_s_per_epoch": round(t_epoch_fp32, 3),
        "authors_style_estimate_s": round(args.epochs * (t_dncnn + t_epoch_fp32), 1),
    }
    print(json.dumps(res, indent=2))
    return 0



def time_auto(args) -> int:
    """The whole ``auto`` fit: every candidate's residuals and fold fingerprints, then the final one."""
    cfg = DIFConfig(epochs=args.epochs, crop=args.crop, extractor=args.extractor, checkpoint_every=args.epochs,
                    train_precision=args.train_precision, extractor_precision=args.extractor_precision)
    if args.augment is not None:
        cfg.augment = args.augment
    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images))
        t0 = time.perf_counter()
        report = get_method("dif").build(cfg).fit(ds.paths, ds.labels, device=torch.device("cpu"))
        total = time.perf_counter() - t0
    choice = report["extractor_choice"]
    res = {"images": len(ds.paths), "augment": cfg.augment, "crop": args.crop, "epochs": args.epochs,
           "threads": torch.get_num_threads(), "extractor": args.extractor, "train_precision": args.train_precision,
           "extractor_precision": args.extractor_precision, "chosen": choice["chosen"],
           "candidates": choice["candidates"], "choice_and_residuals_s": round(report["residual_seconds"], 2),
           "final_train_s": round(report["train_seconds"], 2), "total_s": round(total, 2)}
    print(json.dumps(res, indent=2))
    return 0



def run_eval(args) -> int:
    """Images per second of each extractor, forward alone and the whole evaluation path."""
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
    print(json.dumps(out, indent=2))
    return 0


def run_deepfeaturex(args) -> int:
    """DeepFeatureX: decoding and resizing once (with and without workers) against training."""
    from ..deepfeaturex.data import load_resized
    from ..deepfeaturex.train import DFXConfig

    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload_dir(Path(tmp), args.images, ("crn", "imle", "san")))
        out = {"threads": torch.get_num_threads(), "images": len(ds.paths), "size": args.size, "epochs": args.epochs}
        for w in (0, 2):
            t0 = time.perf_counter()
            load_resized(ds.paths, args.size, workers=w)
            out[f"decode_resize_s_workers{w}"] = round(time.perf_counter() - t0, 2)
        m = get_method("deepfeaturex").build(DFXConfig(image_size=args.size, epochs=args.epochs))
        t0 = time.perf_counter()
        rep = m.fit(ds.paths, ds.labels, device=torch.device("cpu"))
        out["fit_total_s"] = round(time.perf_counter() - t0, 1)
        for c, r in rep["base"].items():
            out[f"base_{c}"] = {"images": r["images"], "seconds": round(r["seconds"], 1),
                                "s_per_epoch": round(r["seconds"] / args.epochs, 2)}
        out["complete"] = {"images": rep["complete"]["images"], "seconds": round(rep["complete"]["seconds"], 1)}
    print(json.dumps(out, indent=2))
    return 0



def run_embed(args) -> int:
    """Photos per second of the artificial fingerprints' embed and detect commands, end to end
    (decoding, the networks, writing PNG files), on ``args.photos``."""
    from ..artificial.__main__ import main as art_main
    from ..data import list_images
    from .common import need_shared_data

    folder = args.photos or need_shared_data() / "faces" / "0_real"
    n = len(list_images(folder))
    out = {"threads": torch.get_num_threads(), "photos": n, "folder": str(folder)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        art_main(["embed", "--data_dir", str(folder), "--output_dir", f"{tmp}/emb", "--quiet", "--workers", "0"])
        out["embed_photos_per_s"] = round(n / (time.perf_counter() - t0), 2)
        t0 = time.perf_counter()
        art_main(["detect", "--data_dir", f"{tmp}/emb/fingerprinted_images", "--output_dir", f"{tmp}/det", "--quiet",
                  "--fingerprints", f"{tmp}/emb/embedded_fingerprints.txt", "--workers", "0"])
        out["detect_photos_per_s"] = round(n / (time.perf_counter() - t0), 2)
        out["bit_accuracy"] = json.loads(Path(f"{tmp}/det/summary.json").read_text())["bit_accuracy"]
    print(json.dumps(out, indent=2))
    return 0
