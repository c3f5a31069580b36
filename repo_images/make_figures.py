#!/usr/bin/env python3
"""Regenerate the figures of the README and docs/ in repo_images/ with the project's own scripts.

    python repo_images/make_figures.py [--shared ../shared/data] [--quick]
    python repo_images/make_figures.py --demo-only     # the quick start's figures, no shared data needed

0. demo_fingerprint.png, demo_fingerprint_fft.png: the README's quick start, its three commands
   with their defaults (``python -m dif.demo``, ``train_dif.py``, ``eval_dif.py``); and
   demo_fingerprint_clean.png, demo_fingerprint_fft_clean.png: the same with ``train_dif.py
   --augment 0 --extractor wavelet-dwt``.
1. gray_experiment.png: ``blank_experiment.py`` at the paper's defaults (128x128, 1000 steps).
2. crn_fingerprint.png, crn_fingerprint_fft.png, crn_training.png: ``train_dif.py`` on the 20 + 20
   CNNDetection CRN images (needs the shared data).
3. official_fingerprints.png: the authors' released fingerprints and their spectra, rendered.
4. crn_histogram.png, crn_roc.png, crn_robustness.png: ``eval_dif.py`` of the CRN fingerprint on
   the SAN images, clean and under every perturbation.
5. cross_accuracy.png, similarity.png: ``eval_dif.py --cross`` of fingerprints trained on 10 + 10
   images of each CNNDetection generator, against all 20 + 20 images of every generator.

The fingerprints of 2-5 use the stationary wavelet residual (``--extractor wavelet``, fixed so that
every fingerprint of a figure shares one extractor) and the other defaults of ``train_dif.py``;
``--extractor dncnn`` redoes them with the DnCNN. The quick start's figures (0) use every default.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    from dif.cli import Parser

    p = Parser(description=__doc__.split("\n")[1])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--quick", action="store_true", help="fewer steps (for a smoke test, not for the docs)")
    p.add_argument("--skip-gray", action="store_true", help="keep the existing gray_experiment.png")
    p.add_argument("--extractor", default="wavelet", help="residual extractor of the fingerprints (default: wavelet)")
    p.add_argument("--demo-only", action="store_true", help="only the quick start's figures (no shared data needed)")
    args = p.parse_args(argv)
    if args.demo_only:
        return demo_figures()
    from dif import plots
    from dif.checkpoint import load_fingerprint_dir
    from dif.cli import run_main
    from dif.extractors import build_extractor
    from dif.errors import DIFError

    # check the inputs before minutes of work (and before any figure is replaced)
    for sub in ("cnndetection/crn", "cnndetection/san", "dif_official/checks"):
        if not (args.shared / sub).is_dir():
            raise DIFError(f"{args.shared / sub} not found (give --shared ../shared/data)")
    build_extractor(args.extractor)

    def run(script: str, argv: list[str]) -> None:
        if run_main(_script(script).main, argv) != 0:  # the script has printed its one-line error
            raise SystemExit(2)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_gray:
            blank = ["--output-dir", str(tmp / "blank"), "--quiet"] + (["--epochs", "50"] if args.quick else [])
            run("blank_experiment", blank)
            shutil.copy(tmp / "blank" / "gray_experiment.png", HERE / "gray_experiment.png")

        crn = args.shared / "cnndetection" / "crn"
        chk = tmp / "crn"
        train = [str(crn), str(chk), "--quiet", "--extractor", args.extractor] + (["--epochs", "5"] if args.quick else [])
        run("train_dif", train)
        for name in ("fingerprint.png", "fingerprint_fft.png", "training.png"):
            shutil.copy(chk / name, HERE / f"crn_{name}")
        run("eval_dif", [str(chk), str(args.shared / "cnndetection" / "san"), "--plots", str(tmp / "plots"),
                         "--perturb", "all", "--quiet"])
        shutil.copy(tmp / "plots" / "histogram.png", HERE / "crn_histogram.png")
        shutil.copy(tmp / "plots" / "roc.png", HERE / "crn_roc.png")
        shutil.copy(tmp / "plots" / "robustness.png", HERE / "crn_robustness.png")

        gens = args.shared / "cnndetection"
        for g in sorted(d.name for d in gens.iterdir() if d.is_dir()):
            train = [str(gens / g), str(tmp / "fps" / g), "--train-size", "10", "--quiet", "--extractor",
                     args.extractor]
            run("train_dif", train + (["--epochs", "5"] if args.quick else []))
        run("eval_dif", [str(tmp / "fps"), str(gens), "--cross", "--plots", str(tmp / "cross"), "--quiet"])
        for name in ("cross_accuracy.png", "similarity.png"):
            shutil.copy(tmp / "cross" / name, HERE / name)

    official = args.shared / "dif_official" / "checks"
    names = ["sd14", "sd21", "mj", "glide", "dalle_2", "stylegan2", "progan"]
    fps = {n: load_fingerprint_dir(official / n).fingerprint for n in names}
    plots.save_fingerprint_panel_png(fps, HERE / "official_fingerprints.png",
                                     "The authors' released fingerprints (top) and their log |FFT| (bottom)")
    print(f"figures written to {HERE}")
    return 0


def demo_figures() -> int:
    """The quick start's three commands with their defaults, and the same training on the clean
    images only (``--augment 0``): each fingerprint and its spectrum."""
    from dif.cli import run_main
    from dif.demo import main as demo_main

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, evaluate = _script("train_dif").main, _script("eval_dif").main
        steps = [(demo_main, [str(tmp / "demo"), "--quiet"])]
        for name, extra in (("check", []), ("clean", ["--augment", "0", "--extractor", "wavelet-dwt"])):
            steps += [(train, [str(tmp / "demo" / "train"), str(tmp / name), "--quiet", *extra]),
                      (evaluate, [str(tmp / name), str(tmp / "demo" / "test"), "--quiet"])]
        import time

        for main, argv in steps:  # each step's time: the quick start's three commands are the first three
            t0 = time.perf_counter()
            if run_main(main, argv) != 0:
                raise SystemExit(2)
            print(f"[{time.perf_counter() - t0:.1f} s] {' '.join(argv[:2])}", flush=True)
        for name, suffix in (("check", ""), ("clean", "_clean")):
            for fig in ("fingerprint", "fingerprint_fft"):
                shutil.copy(tmp / name / f"{fig}.png", HERE / f"demo_{fig}{suffix}.png")
    print(f"demo figures written to {HERE}")
    return 0


if __name__ == "__main__":
    from dif.cli import run_main

    sys.exit(run_main(main))
