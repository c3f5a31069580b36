#!/usr/bin/env python3
"""Model lineage, reproducible on 2 CPU cores: does a fine-tuned child keep its parent's fingerprint?

Generators (``dif.generators``), all seeded, on random crops of the clean photos in
../shared/data/natural:
  P  parent:   dcgan (ConvTranspose up-sampling), seed 0, trained on crops of train400[:300]
  C  child:    P fine-tuned on other photos (bsd68 + live1: new content, and colour)
  S  sibling:  dcgan, seed 1, the parent's data
  X  stranger: upconv (nearest up-sampling + 3x3 convolutions), seed 0, the parent's data
Real images are crops of train400[300:], which no generator saw. A DIF fingerprint is trained
for each model with train_dif.py (real vs the model's samples, at the crops' size), then the
cross-detection matrix (eval_dif.py --cross: each fingerprint on every model's new samples) and the
fingerprints' similarity; the erase curve fine-tunes P for more and more steps and reports P's
fingerprint's AUC on the child's samples and the similarity of the child's own fingerprint to P's.

    python benchmarks/lineage_experiment.py --out OUT [--size 32] [--steps 3000] [--finetune 0,100,300,1000,3000]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_set(folder: Path, real, fake) -> Path:
    """folder/0_real and folder/1_fake as PNG (the same format for both classes)."""
    import numpy as np
    from PIL import Image

    for sub, imgs in (("0_real", real), ("1_fake", fake)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(imgs):
            Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / sub / f"{i:05d}.png")
    return folder


def main(argv=None) -> int:
    import numpy as np
    import torch

    from _common import shared_data, train_fingerprint_quietly
    from dif.atomic import RunFolder, write_text_atomic
    from dif.cli import Parser, int_in, resolve_device
    from dif.data import list_images, load_image
    from dif.errors import DIFError
    from dif.evaluate import cross_detection
    from dif.generators import GeneratorConfig, random_crops, train_generator
    from dif.lineage import fingerprint_similarity, load_methods
    from dif import plots

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created; refused if it holds an earlier run "
                                                           "without --overwrite)")
    p.add_argument("--size", type=int, default=32, choices=[32, 64], help="crop and image size (DIF needs at least 32)")
    p.add_argument("--steps", type=int_in(1, 10**7), default=3000, help="training steps of P, S and X")
    p.add_argument("--finetune", default="0,100,300,1000,3000",
                   help="fine-tuning steps of the erase curve; the largest is the child C")
    p.add_argument("--crops", type=int_in(64, 10**7), default=4000, help="training crops per generator data set")
    p.add_argument("--images", type=int_in(4, 10**5), default=128, help="images per class for each fingerprint, and "
                                                                        "again for each test set")
    p.add_argument("--epochs", type=int_in(1, 10**5), default=30, help="DIF training epochs")
    p.add_argument("--denoiser", default="dncnn", help="DIF residual extractor")
    p.add_argument("--augment", type=int_in(0, 100), default=0, help="DIF --augment (default 0: the paper's recipe)")
    p.add_argument("--training", choices=["gan", "ae"], default="gan", help="how the generators are trained")
    p.add_argument("--seed", type=int_in(0, 2**31), default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--figures", type=Path, default=None, help="also copy the figures here (e.g. repo_images/)")
    args = p.parse_args(argv)
    try:
        finetune = sorted({int(s) for s in args.finetune.split(",") if s.strip()})
    except ValueError:
        raise DIFError(f"--finetune: expected whole numbers separated by commas, got {args.finetune!r}") from None
    if not finetune or finetune[0] < 0:
        raise DIFError("--finetune needs at least one step count >= 0")
    device = resolve_device(args.device)
    data = shared_data()
    if data is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA)")
    t_all = time.perf_counter()
    nat = data / "natural"
    train400 = list_images(nat / "train400")
    parent_photos = [load_image(q) for q in train400[:300]]
    real_photos = [load_image(q) for q in train400[300:]]
    child_photos = [load_image(q) for q in list_images(nat / "bsd68") + list_images(nat / "live1")]
    S, n = args.size, args.images
    A = random_crops(parent_photos, S, args.crops, args.seed)
    B = random_crops(child_photos, S, args.crops, args.seed + 1)
    R = random_crops(real_photos, S, 2 * n, args.seed + 2)
    real_train, real_test = R[:n], R[n:]
    progress = not args.quiet and sys.stderr.isatty()
    record: dict = {"size": S, "steps": args.steps, "finetune": finetune, "crops": args.crops, "images": n,
                    "epochs": args.epochs, "denoiser": args.denoiser, "augment": args.augment, "training": args.training,
                    "seed": args.seed, "device": str(device), "models": {}}

    with RunFolder(args.out, args.overwrite, lambda name: name in ("results.json", "figures", "data", "fingerprints"),
                   what="--out") as run:
        out = run.tmp
        models = {}

        def fit(name, arch, seed, images, init=None, steps=args.steps):
            cfg = GeneratorConfig(arch=arch, training=args.training, size=S, steps=steps, seed=seed)
            gen = train_generator(images, cfg, device, init=init, progress=progress, desc=name)
            record["models"][name] = {"arch": arch, "seed": seed, "steps": gen.steps, "seconds": round(gen.seconds, 1),
                                      "parent": "P" if init is not None else None}
            print(f"{name}: {arch}, seed {seed}, {steps} steps ({gen.steps} in all) in {gen.seconds:.0f} s", flush=True)
            return gen

        models["P"] = fit("P", "dcgan", args.seed, A)
        models["S"] = fit("S", "dcgan", args.seed + 1, A)
        models["X"] = fit("X", "upconv", args.seed, A)
        prev, done = models["P"], 0
        children = {}
        for k in finetune:  # fine-tuning continues from the previous checkpoint of the curve
            if k == 0:
                children[k] = models["P"]
                continue
            prev = fit(f"C{k}", "dcgan", args.seed + 100, B, init=prev, steps=k - done)
            done, children[k] = k, prev
        models["C"] = children[finetune[-1]]
        record["models"]["C"] = dict(record["models"].get(f"C{finetune[-1]}", record["models"]["P"]),
                                     finetune_steps=finetune[-1])

        # samples: a training set and a new test set per model (reals never seen by any generator)
        sets = {name: m for name, m in models.items()}
        sets.update({f"C{k}": m for k, m in children.items() if k not in (0, finetune[-1])})
        for i, (name, m) in enumerate(sets.items()):
            fake = m.sample(2 * n, seed=args.seed + 1000 + i)
            save_set(out / "data" / "train" / name, real_train, fake[:n])
            save_set(out / "data" / "test" / name, real_test, fake[n:])
        grid_path = out / "figures" / "lineage_samples.png"
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        from torchvision.utils import save_image

        save_image(torch.cat([real_test[:12]] + [sets[k].sample(12, seed=5) for k in ("P", "C", "S", "X")]), grid_path,
                   nrow=12, padding=1)

        # DIF fingerprints, trained as a user would
        for idx, name in enumerate(sets):  # distinct DIF seeds: shared initial weights would look like shared lineage
            secs = train_fingerprint_quietly(out, name, S, args.epochs, min(64, n), args.denoiser, args.augment,
                                             args.seed + idx, device.type)
            record["models"].setdefault(name, {})["dif_seconds"] = round(secs, 1)

        methods = load_methods(out / "fingerprints", device=device)
        main4 = ["P", "C", "S", "X"]
        res = cross_detection({k: methods[k] for k in main4}, {k: out / "data" / "test" / k for k in main4},
                              batch_size=64, workers=0)["clean"]
        names, sim = fingerprint_similarity({k: methods[k].signature() for k in main4})
        record["cross"] = res.to_json()
        record["similarity"] = {"names": names, "matrix": sim.round(4).tolist()}
        plots.save_heatmap_png(res.auc, res.fingerprints, res.generators, out / "figures" / "lineage_cross_auc.png",
                               "AUC: fingerprint (rows) on model (columns)", "model's samples", "fingerprint")
        plots.save_heatmap_png(sim, names, names, out / "figures" / "lineage_similarity.png",
                               "Fingerprint similarity (peak |NCC| over shifts)", "fingerprint", "fingerprint")
        plots.save_fingerprint_panel_png({k: methods[k].signature() for k in main4},
                                         out / "figures" / "lineage_fingerprints.png", "Fingerprints and spectra: P C S X")

        # the erase curve: P's fingerprint on the children's samples, and the children's fingerprints' similarity to P's
        curve = []
        child_names = {k: ("P" if k == 0 else "C" if k == finetune[-1] else f"C{k}") for k in finetune}
        cres = cross_detection({"P": methods["P"]}, {child_names[k]: out / "data" / "test" / child_names[k]
                                                     for k in finetune}, batch_size=64, workers=0)["clean"]
        for j, k in enumerate(finetune):
            cn = child_names[k]
            _, s2 = fingerprint_similarity({"P": methods["P"].signature(), cn: methods[cn].signature()})
            curve.append({"finetune_steps": k, "auc_of_P": float(cres.auc[0, j]), "accuracy_of_P": float(cres.accuracy[0, j]),
                          "similarity_to_P": 1.0 if k == 0 else float(s2[0, 1])})
        record["erase_curve"] = curve
        _curve_png(curve, out / "figures" / "lineage_erase_curve.png")
        record["seconds"] = round(time.perf_counter() - t_all, 1)
        write_text_atomic(out / "results.json", json.dumps(record, indent=1) + "\n")
        run.commit()

    a = np.array(record["cross"]["auc"], dtype=float)
    print("AUC, fingerprint (rows) on model (columns):      " + "  ".join(f"{g:>5}" for g in main4))
    for i, f in enumerate(main4):
        print(f"  {f}  " + "  ".join(f"{v:5.3f}" for v in a[i]))
    print("similarity: " + ", ".join(f"{names[i]}-{names[j]} {sim[i, j]:.3f}" for i in range(4) for j in range(i + 1, 4)))
    for c in curve:
        print(f"fine-tuned {c['finetune_steps']:>6} steps: P's AUC {c['auc_of_P']:.3f}, similarity to P {c['similarity_to_P']:.3f}")
    if args.figures:
        import shutil

        args.figures.mkdir(parents=True, exist_ok=True)
        for f in (args.out / "figures").iterdir():
            shutil.copy(f, args.figures / f.name)
    print(f"{record['seconds']:.0f} s; wrote {args.out}")
    return 0


def _curve_png(curve, path: Path) -> None:
    from dif.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = [max(c["finetune_steps"], 1) for c in curve]
    ax.plot(x, [c["auc_of_P"] for c in curve], "o-", label="AUC of P's fingerprint on the child")
    ax.plot(x, [c["similarity_to_P"] for c in curve], "s--", label="similarity of the child's fingerprint to P's")
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning steps (0 plotted at 1)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Erasing the parent's fingerprint by fine-tuning", fontsize=9)
    _save(fig, path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
