"""python -m dif.deepfeaturex {guidance,train-base,train-complete,test}: the authors' four scripts.

    python -m dif.deepfeaturex guidance --datasets_dir D --saving_dir S
    python -m dif.deepfeaturex train-base --datasets_dir D --main_class real --saving_path MODELS
    python -m dif.deepfeaturex train-complete --datasets_dir D --saving_path MODELS
    python -m dif.deepfeaturex test --model_path MODELS/complete --datasets_dir D [--robustness]

D is ``gan_generated/ dm_generated/ real/`` with one folder per architecture inside (the authors'
layout), or ``0_real/ 1_fake/``. Without ``--guidance`` the 40/40/20 base/complete/test split is
drawn from D with ``--seed``, per architecture folder, the same in every command.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from ..cli import Parser, add_common_arguments, int_in, prog_name, resolve_device, run_main, setup_logging
from ..config import add_config_arguments, config_from_args, validate_fields
from ..errors import DIFError, shown
from .train import DFXConfig

BASE_FILE = "base.pt"
BASE_FORMAT = "dif-deepfeaturex-base-v1"


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets_dir", "--datasets-dir", type=Path, default=None, help="the data root (see above)")
    p.add_argument("--guidance", type=Path, default=None, help="a guidance CSV (ours, or the authors' label,image_path,model)")


def _items(args, seed: int):
    """(classes, items with their split) from --guidance or --datasets_dir."""
    from .data import find_dataset, read_guidance, stratified_split

    if args.guidance is not None:
        classes, items = read_guidance(args.guidance, seed)
        return classes, items
    if args.datasets_dir is None:
        raise DIFError("give --datasets_dir or --guidance")
    classes, items, skipped = find_dataset(args.datasets_dir)
    for p, why in skipped:
        print(f"warning: skipping {shown(p)}: {why}", file=sys.stderr)
    return classes, stratified_split(items, seed=seed)


def parse_args(argv: Optional[Sequence[str]] = None):
    p = Parser(prog=prog_name("dif.deepfeaturex"), description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    g = sub.add_parser("guidance", help="write guidance.csv (label,image_path,model,split)")
    g.add_argument("--datasets_dir", "--datasets-dir", type=Path, required=True)
    g.add_argument("--saving_dir", "--saving-dir", "--guidance_dir", type=Path, required=True,
                   help="folder for guidance.csv")
    g.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="the split's seed")
    g.add_argument("--overwrite", action="store_true")
    for name, helptext in (("train-base", "train one base model (--main_class)"),
                           ("train-complete", "train the complete model on the frozen base models")):
        t = sub.add_parser(name, help=helptext)
        _data_args(t)
        if name == "train-base":
            t.add_argument("--main_class", "--main-class", required=True, help="the base model's class folder")
        t.add_argument("--saving_path", "--saving-path", type=Path, required=True,
                       help="models folder: base_<class>/ and complete/ are written in it")
        add_config_arguments(t, DFXConfig)
        add_common_arguments(t, workers=True)
        t.add_argument("--overwrite", action="store_true", help="replace an earlier model of the same name")
    t = sub.add_parser("test", help="test a complete model: accuracy, P/R/F1, confusion, binary AP/AUC")
    t.add_argument("--model_path", "--model-path", type=Path, required=True, help="the complete model's folder")
    _data_args(t)
    t.add_argument("--split", default="test", choices=["test", "all"], help="which images to test on")
    t.add_argument("--saving_path", "--saving-path", type=Path, default=None, help="JSON results (default: print only)")
    t.add_argument("--robustness", action="store_true",
                   help="also under DeepFeatureX's perturbations (JPEG 90-50, blur k 3/7/15, scale 0.5/2, mirror, rot 45/135)")
    t.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0,
                   help="the split's seed (as in training) and the balanced subsample's")
    add_common_arguments(t, workers=True)
    return p.parse_args(argv)


def cmd_guidance(args) -> int:
    from ..atomic import check_output_file
    from .data import find_dataset, stratified_split, write_guidance

    out = args.saving_dir / "guidance.csv"
    check_output_file(out, "--saving_dir")
    if out.exists() and not args.overwrite:
        raise DIFError(f"{shown(out)} exists; pass --overwrite to replace it")
    classes, items, skipped = find_dataset(args.datasets_dir)
    items = stratified_split(items, seed=args.seed)
    write_guidance(out, classes, items)
    counts = {s: sum(it.split == s for it in items) for s in ("base", "complete", "test")}
    print(f"{len(items)} images of {len(classes)} classes ({', '.join(classes)}); split {counts}; "
          f"{len(skipped)} non-image file(s) skipped; wrote {out}")
    return 0


def _check_class(name: str, classes: list[str]) -> int:
    if name not in classes:
        raise DIFError(f"--main_class {name!r} is not a class of the data ({', '.join(classes)})")
    return classes.index(name)


def cmd_train_base(args) -> int:
    from ..atomic import RunFolder, save_torch_atomic, write_text_atomic
    from .data import base_model_set, load_resized
    from .train import train_base

    cfg = validate_fields(config_from_args(DFXConfig, args))
    cfg.input_side
    device = resolve_device(args.device)
    classes, items = _items(args, cfg.seed)
    main = _check_class(args.main_class, classes)
    chosen = base_model_set([it for it in items if it.split == "base"], main, cfg.perc_to_take, cfg.seed)
    out = args.saving_path / f"base_{args.main_class}"
    with RunFolder(out, args.overwrite, lambda n: n in (BASE_FILE, "config.json"), what="--saving_path") as run:
        print(f"Base model {args.main_class}: {sum(it.label for it in chosen)} images of the class + "
              f"{sum(1 - it.label for it in chosen)} of the others ({cfg.backbone}, {cfg.image_size} px) on {device}")
        imgs, kept, skipped = load_resized([it.path for it in chosen], cfg.image_size, cfg.crop, workers=args.workers,
                                           progress=not args.quiet, desc="Decoding")
        model, hist = train_base(imgs, [chosen[i].label for i in kept], cfg, device, not args.quiet,
                                 desc=f"Base model {args.main_class}")
        save_torch_atomic(run.tmp / BASE_FILE, {"format": BASE_FORMAT, "backbone": cfg.backbone, "classes": classes,
                                                 "main_class": args.main_class,
                                                 "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
        write_text_atomic(run.tmp / "config.json", json.dumps(dict(asdict(cfg), method="deepfeaturex-base",
                                                                   classes=classes, main_class=args.main_class,
                                                                   history=hist, skipped=len(skipped)), indent=1) + "\n")
        run.commit()
    print(f"best epoch {hist['best_epoch']} (val loss {min(hist['val_loss']):.4f}) in {hist['seconds']:.0f} s; saved {out}")
    return 0


def load_base(folder: Path, cfg: DFXConfig, classes: list[str]):
    """A base model saved by train-base, checked against the data's classes and the backbone."""
    from .method import _load, read_model_file
    from .models import build_backbone

    path = folder / BASE_FILE
    payload = read_model_file(path, BASE_FORMAT, "DeepFeatureX base model",
                              f"run train-base --main_class {folder.name[5:]} first")
    if payload.get("backbone") != cfg.backbone:
        raise DIFError(f"{shown(path)} is a {payload.get('backbone')!r} model, not --backbone {cfg.backbone}")
    if payload.get("classes") != classes:
        raise DIFError(f"{shown(path)} was trained with the classes {payload.get('classes')}, the data has {classes}")
    net, _ = build_backbone(cfg.backbone, 2, "none", cfg.input_side)
    _load(net, payload.get("state_dict"), path)
    return net


def cmd_train_complete(args) -> int:
    from ..atomic import RunFolder
    from .data import load_resized
    from .method import DeepFeatureXMethod
    from .train import train_complete

    cfg = validate_fields(config_from_args(DFXConfig, args))
    device = resolve_device(args.device)
    classes, items = _items(args, cfg.seed)
    bases = [load_base(args.saving_path / f"base_{c}", cfg, classes) for c in classes]
    comp = [it for it in items if it.split == "complete"]
    method = DeepFeatureXMethod(cfg, classes)
    out = args.saving_path / "complete"
    with RunFolder(out, args.overwrite, DeepFeatureXMethod.owns_file, what="--saving_path") as run:
        imgs, kept, skipped = load_resized([it.path for it in comp], cfg.image_size, cfg.crop, workers=args.workers,
                                           progress=not args.quiet, desc="Decoding")
        labels = [comp[i].label for i in kept]
        if len(set(labels)) < 2:
            raise DIFError("the complete model's split holds fewer than two classes")
        print(f"Complete model on {len(labels)} images ({len(classes)} classes, {cfg.backbone}) on {device}")
        method.model, hist = train_complete(bases, imgs, labels, len(classes), cfg, device, not args.quiet)
        method.history = {"complete": hist, "skipped": len(skipped)}
        method.save(run.tmp)
        run.commit()
    print(f"best epoch {hist['best_epoch']} (val loss {min(hist['val_loss']):.4f}) in {hist['seconds']:.0f} s; saved {out}")
    return 0


def cmd_test(args) -> int:
    from ..atomic import check_output_file, write_text_atomic
    from ..robustness import DFX_SUITE, get_perturbation
    from .data import load_resized
    from .method import DeepFeatureXMethod
    from .train import predict_proba, test_metrics

    check_output_file(args.saving_path, "--saving_path")
    device = resolve_device(args.device)
    m = DeepFeatureXMethod.load(args.model_path, device=device)
    classes, items = _items(args, args.seed)
    if classes != m.classes:
        raise DIFError(f"the data's classes {classes} are not the model's {m.classes}")
    chosen = [it for it in items if args.split == "all" or it.split == "test"]
    if not chosen:
        raise DIFError("no test images (use --split all to test on every image)")
    results = {}
    for cond in ["clean"] + (DFX_SUITE if args.robustness else []):
        t = None if cond == "clean" else get_perturbation(cond)
        imgs, kept, skipped = load_resized([it.path for it in chosen], m.config.image_size, m.config.crop, transform=t,
                                           workers=args.workers, progress=not args.quiet, desc=cond)
        for p, why in skipped:
            print(f"warning: {cond}: skipping {why if shown(p) in why else f'{shown(p)}: {why}'}", file=sys.stderr)
        if not kept:
            if cond == "clean":
                raise DIFError(f"none of the {len(chosen)} test image(s) could be read (see the warnings above)")
            results[cond] = {"images": 0, "skipped": len(skipped)}
            print(f"{cond:<10} no usable image ({len(skipped)} skipped)")
            continue
        proba = predict_proba(m.model, imgs, device)
        results[cond] = test_metrics(proba, [chosen[i].label for i in kept], classes, m.real, args.seed)
        r = results[cond]
        r["skipped"] = len(skipped)
        print(f"{cond:<10} accuracy {r['accuracy']:.3f} | binary (balanced) {r['binary_accuracy_balanced']:.3f} | "
              f"AP {r['binary_ap'] if r['binary_ap'] is None else round(r['binary_ap'], 3)} | "
              f"AUC {r['binary_auc'] if r['binary_auc'] is None else round(r['binary_auc'], 3)}")
    clean = results["clean"]
    for c, v in clean["per_class"].items():
        print(f"  {c:<16} precision {v['precision']:.3f} recall {v['recall']:.3f} F1 {v['f1']:.3f} (n={v['n']})")
    print("  confusion (rows: true, columns: predicted):", clean["confusion_matrix"])
    if args.saving_path:
        write_text_atomic(args.saving_path, json.dumps({"model": str(args.model_path), "classes": classes,
                                                        "split": args.split, **results}, indent=1) + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    return {"guidance": cmd_guidance, "train-base": cmd_train_base, "train-complete": cmd_train_complete,
            "test": cmd_test}[args.command](args)


def cli() -> int:
    """The installed command's entry point (``[project.scripts]`` in pyproject.toml)."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(cli())
