#!/usr/bin/env python3
"""Training speed of the 2-class DeepFeatureX (resnet18 from scratch) on CPU.

Workload (the issue's): 40 real + 40 generated images (CNNDetection CRN and IMLE, 356 px JPEG,
from ../shared/data; synthetic when absent), resized to 256 x 256, 10 epochs for each base model
and for the complete model. Reports the time to decode and resize every image once (with and
without DataLoader workers) against the training time, so one can see that decoding is not the
bottleneck.

    python benchmarks/dfx_speed.py [--epochs 10] [--images 40]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path


def workload(tmp: Path, n: int) -> Path:
    """n real + n generated images: CNNDetection CRN, then IMLE, then synthetic ones."""
    import shutil

    import numpy as np
    from PIL import Image

    from _common import shared_data

    src = shared_data()
    out = tmp / "data"
    for sub in ("0_real", "1_fake"):
        (out / sub).mkdir(parents=True)
        files = []
        for g in ("crn", "imle", "san"):
            if src is not None and (src / "cnndetection" / g / sub).is_dir():
                files += sorted((src / "cnndetection" / g / sub).iterdir())
        for i in range(n):
            if i < len(files):
                shutil.copy(files[i], out / sub / f"{i}{files[i].suffix}")
            else:
                rng = np.random.default_rng(i + (1000 if sub == "1_fake" else 0))
                Image.fromarray(rng.integers(0, 255, (356, 356, 3), dtype=np.uint8)).save(out / sub / f"{i}.png")
    return out


def main(argv=None) -> int:
    from dif.cli import Parser, int_in

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--epochs", type=int_in(1, 1000), default=10)
    p.add_argument("--images", type=int_in(2, 10_000), default=40, help="images per class")
    p.add_argument("--size", type=int_in(32, 1024), default=256)
    args = p.parse_args(argv)

    import torch

    from dif.data import find_labelled
    from dif.deepfeaturex.data import load_resized
    from dif.deepfeaturex.method import DeepFeatureXMethod
    from dif.deepfeaturex.train import DFXConfig

    with tempfile.TemporaryDirectory() as tmp:
        ds = find_labelled(workload(Path(tmp), args.images))
        out = {"threads": torch.get_num_threads(), "images": len(ds.paths), "size": args.size, "epochs": args.epochs}
        for w in (0, 2):
            t0 = time.perf_counter()
            load_resized(ds.paths, args.size, workers=w)
            out[f"decode_resize_s_workers{w}"] = round(time.perf_counter() - t0, 2)
        m = DeepFeatureXMethod.build(DFXConfig(image_size=args.size, epochs=args.epochs))
        t0 = time.perf_counter()
        rep = m.fit(ds.paths, ds.labels, device=torch.device("cpu"))
        out["fit_total_s"] = round(time.perf_counter() - t0, 1)
        for c, r in rep["base"].items():
            out[f"base_{c}"] = {"images": r["images"], "seconds": round(r["seconds"], 1),
                                "s_per_epoch": round(r["seconds"] / args.epochs, 2)}
        out["complete"] = {"images": rep["complete"]["images"], "seconds": round(rep["complete"]["seconds"], 1)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
