"""python -m dif.artificial {train,embed,detect,attribute,detector}: their three scripts, attribution,
and a checkpoint folder for eval_dif.py.

    python -m dif.artificial train --data_dir PHOTOS --image_resolution 32 --output_dir RUN
    python -m dif.artificial embed --encoder_path RUN/encoder.pth --data_dir IMAGES --output_dir OUT
    python -m dif.artificial detect --decoder_path RUN/decoder.pth --data_dir OUT/fingerprinted_images --output_dir DET
    python -m dif.artificial attribute --decoder_path RUN/decoder.pth --data_dir IMAGES --database users.csv --output_dir ATT
    python -m dif.artificial detector --decoder_path RUN/decoder.pth --database users.csv --output_dir CHECK
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..cli import Parser, add_common_arguments, int_in, prog_name, resolve_device, run_main, setup_logging
from ..config import add_config_arguments, config_from_args, validate_fields
from ..errors import DIFError, shown
from .bits import DEFAULT_ALPHA, alpha_arg
from .files import fingerprint_lines, read_database, read_fingerprint_file
from .train import ArtificialConfig, check_celeba
from .weights import DEFAULT_DECODER, DEFAULT_ENCODER

TRAIN_FILES = ("encoder.pth", "decoder.pth", "history.json", "summary.json", "samples.png", "model_card.md")


def parse_args(argv: Optional[Sequence[str]] = None):
    p = Parser(prog=prog_name("dif.artificial"), description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train an encoder/decoder pair")
    t.add_argument("--data_dir", "--data-dir", type=Path, nargs="+", required=True,
                   help="folder(s) of training images (their files, not sub-folders)")
    t.add_argument("--val_dir", "--val-dir", type=Path, nargs="*", default=[],
                   help="folder(s) of held-out images: bit accuracy, PSNR and SSIM on seeded crops of them")
    t.add_argument("--output_dir", "--output-dir", type=Path, required=True,
                   help="encoder.pth, decoder.pth, history.json, summary.json, samples.png, model_card.md")
    t.add_argument("--init_from", "--init-from", type=Path, default=None,
                   help="continue from the encoder.pth and decoder.pth of an earlier run (with --l2_loss_await 0 "
                        "--l2_loss_ramp 1 the image loss is at full weight as soon as a batch decodes > 0.9)")
    add_config_arguments(t, ArtificialConfig)
    add_common_arguments(t, workers=True)
    t.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output_dir")

    for name, helptext in (("embed", "fingerprint images"), ("detect", "decode the fingerprints of images"),
                           ("attribute", "attribute images to the users of a fingerprint database")):
        s = sub.add_parser(name, help=helptext)
        if name == "embed":
            s.add_argument("--encoder_path", "--encoder-path", type=Path, default=DEFAULT_ENCODER,
                           help="encoder weights (default: the shipped pair's)")
            s.add_argument("--identical_fingerprints", "--identical-fingerprints", action="store_true",
                           help="one fingerprint for every image")
            s.add_argument("--fingerprint", default=None, help="embed this bit string (implies identical fingerprints)")
            s.add_argument("--seed", type=int_in(0, 2**32 - 1), default=42, help="seed of the fingerprints (theirs: 42)")
            s.add_argument("--check", type=Path, default=None, help="also decode with this decoder and report bit accuracy")
            s.add_argument("--psnr", type=float, default=None,
                           help="a whole-photo pair's strength in dB (default: the pair's own, 38.5 for the shipped one)")
        else:
            s.add_argument("--decoder_path", "--decoder-path", type=Path, default=DEFAULT_DECODER,
                           help="decoder weights (default: the shipped pair's)")
        s.add_argument("--data_dir", "--data-dir", type=Path, required=True, help="folder of images")
        s.add_argument("--output_dir", "--output-dir", type=Path, required=True)
        s.add_argument("--image_resolution", "--image-resolution", type=int, default=None,
                       help="default: the model's own (a different value is an error)")
        s.add_argument("--fingerprint_length", "--fingerprint-length", type=int, default=None,
                       help="default: the model's own (a different value is an error)")
        s.add_argument("--use_celeba_preprocessing", "--use-celeba-preprocessing", action="store_true",
                       help="CelebA aligned images: centre 148 x 148 crop, resized to 128")
        s.add_argument("--batch_size", "--batch-size", type=int_in(1, 65_536), default=64)
        if name == "detect":
            s.add_argument("--fingerprints", type=Path, default=None,
                           help="an embedded_fingerprints.txt: report bit accuracy against it (matched by name)")
        if name == "attribute":
            s.add_argument("--database", type=Path, required=True, help="CSV with columns user,bits")
            s.add_argument("--alpha", type=alpha_arg, default=DEFAULT_ALPHA,
                           help="overall significance (Bonferroni over the users; default 1e-6)")
        add_common_arguments(s, workers=True)
        s.add_argument("--overwrite", action="store_true", help="replace an earlier output in --output_dir")

    d = sub.add_parser("detector", help="a checkpoint folder eval_dif.py can score with (decoder + fingerprints)")
    d.add_argument("--decoder_path", "--decoder-path", type=Path, default=DEFAULT_DECODER,
                   help="decoder weights (default: the shipped pair's)")
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--database", type=Path, help="CSV with columns user,bits")
    g.add_argument("--fingerprint", help="one bit string (a database of one user)")
    g.add_argument("--fingerprints", type=Path, help="an embedded_fingerprints.txt with identical fingerprints")
    d.add_argument("--output_dir", "--output-dir", type=Path, required=True, help="the CHECK_DIR to write")
    d.add_argument("--alpha", type=alpha_arg, default=DEFAULT_ALPHA, help="overall significance (default 1e-6)")
    d.add_argument("--use_celeba_preprocessing", "--use-celeba-preprocessing", action="store_true")
    d.add_argument("--overwrite", action="store_true")

    w = sub.add_parser("whole", help="a whole-photo pair (each photo fingerprinted at its own size) from a square pair")
    w.add_argument("--init_from", "--init-from", type=Path, required=True,
                   help="folder of a trained pair (encoder.pth, decoder.pth); its networks are kept as they are")
    w.add_argument("--psnr", type=float, default=38.5, help="the change's strength per photo, in dB (default 38.5)")
    w.add_argument("--output_dir", "--output-dir", type=Path, required=True)
    w.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- helpers

def _images(folder: Path) -> list[Path]:
    from ..data import scan_folder

    paths, skipped = scan_folder(folder)
    for path, why in skipped:
        print(f"warning: skipping {shown(path)}: {why}", file=sys.stderr)
    if not paths:
        raise DIFError(f"no images in {shown(folder)}")
    return paths


def _batches(paths: Sequence[Path], resolution: int, celeba: bool, batch: int, workers: Optional[int], progress: bool,
             desc: str):
    """(kept paths, N x 3 x R x R batch) with each image centre-cropped to its shorter side and
    resized to the resolution (their README's preprocessing, which their detect script forgot)."""
    from ..data import stream_images
    from .train import Preprocess

    paths = list(paths)
    for idx, cols in stream_images(paths, [Preprocess(resolution, celeba)], batch_size=batch, workers=workers,
                                   progress=progress, desc=desc):
        if idx:
            yield [paths[i] for i in idx], torch.stack(cols[0])


def _summary(path: Path, d: dict) -> None:
    from ..atomic import write_text_atomic

    write_text_atomic(path, json.dumps(d, indent=1, default=str) + "\n")


# ----------------------------------------------------------------------------- commands

def cmd_train(args) -> int:
    from ..atomic import RunFolder
    from .train import fixed_crops, train_pair
    from .weights import load_model, save_model

    cfg = validate_fields(config_from_args(ArtificialConfig, args)).checked()
    device = resolve_device(args.device)
    init = None
    if args.init_from is not None:
        init = (load_model(args.init_from / "encoder.pth", "encoder", cfg.image_resolution, cfg.fingerprint_length),
                load_model(args.init_from / "decoder.pth", "decoder", cfg.image_resolution, cfg.fingerprint_length))
    paths = [p for d in args.data_dir for p in _images(d)]
    val_paths = [p for d in args.val_dir for p in _images(d)]
    overlap = set(map(Path.resolve, paths)) & set(map(Path.resolve, val_paths))
    if overlap:
        raise DIFError(f"{len(overlap)} image(s) are in both --data_dir and --val_dir")
    with RunFolder(args.output_dir, args.overwrite, lambda n: n in TRAIN_FILES, what="--output_dir") as run:
        val = fixed_crops(val_paths, cfg.image_resolution, 8, cfg.seed) if val_paths else None
        print(f"Training a {cfg.image_resolution} px, {cfg.fingerprint_length}-bit encoder/decoder on "
              f"{len(paths)} images{f' ({len(val)} held-out crops)' if val is not None else ''} on {device}")

        def snapshot(state: dict) -> None:
            save_model(run.tmp / "encoder.pth", state["encoder"])
            save_model(run.tmp / "decoder.pth", state["decoder"])
            _summary(run.tmp / "history.json", state["history"])

        enc, dec, report = train_pair(paths, cfg, device, progress=not args.quiet, val=val, snapshot=snapshot,
                                      workers=args.workers or 0, init=init)
        summary = {"config": asdict(cfg), "data_dir": [str(d) for d in args.data_dir], "images": len(paths),
                   "init_from": str(args.init_from) if args.init_from else None,
                   "val_dir": [str(d) for d in args.val_dir], "command": command_line(), **report}
        if val is not None:
            _samples(run.tmp / "samples.png", enc, val[:8].to(device), cfg.seed)
        _summary(run.tmp / "summary.json", summary)
        write_model_card(run.tmp, summary)
        run.commit()
    if report["skipped"]:
        print(f"warning: skipped {len(report['skipped'])} unusable image(s) (see the warnings above; listed in "
              f"summary.json)")
    v = report["val"]
    tail = (f"; held-out: bit accuracy {v['bit_accuracy']:.4f}, PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}"
            if v else "")
    print(f"{report['steps']} steps in {report['seconds']:.0f} s (stopped by {report['stopped']}){tail}; saved "
          f"{args.output_dir}")
    return 0


def command_line() -> str:
    """This process's command, as a user would type it again."""
    import shlex

    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv = ["python", "-m", "dif.artificial"] + argv[1:]
    return " ".join(shlex.quote(a) for a in argv)


def write_model_card(folder: Path, summary: dict) -> Path:
    """model_card.md of a trained pair, from its summary.json."""
    import platform

    from ..atomic import write_text_atomic

    cfg, v = summary["config"], summary.get("val") or {}
    lines = [
        "# Artificial-fingerprint encoder/decoder: model card", "",
        "- files: `encoder.pth`, `decoder.pth` (weights only; `dif.artificial.weights.load_model`)",
        f"- made by: `{summary.get('command', '?')}`",
        f"- resolution {cfg['image_resolution']} px, {cfg['fingerprint_length']} bits, seed {cfg['seed']}"
        + ("; the encoder changes the grey level only (`--luma`)" if cfg.get("luma") else ""),
        f"- training images ({summary['images'] - len(summary.get('skipped', []))}"
        + (f", {len(summary['skipped'])} unusable skipped" if summary.get("skipped") else "")
        + f"): {', '.join(summary['data_dir'])}"
        + (f"; random {cfg['image_resolution']} px crops with flips and per-channel gains"
           + (f", windows of up to {cfg['random_scale']:g}x that side resized down to it"
              if cfg.get("random_scale", 1) != 1 else "")
           + (f", colour scaled by up to {1 + cfg['saturation']:g}x" if cfg.get("saturation") else "")
           + (f", a colour field of amplitude up to {cfg['chroma']:g} added" if cfg.get("chroma") else "")
           + f", {cfg['crops_per_epoch']} per epoch" if cfg["random_crop"] else "; centre crop + resize"),
        f"- recipe: Adam lr {cfg['lr']:g}"
        + (" with cosine decay to 0 over the run" if cfg.get("lr_decay", "none") == "cosine" else "")
        + f", batch {cfg['batch_size']}, BCE weight {cfg['BCE_loss_weight']:g}, image "
        f"(MSE) weight 0 until a batch decodes > 0.9, then {cfg['l2_loss_await']} steps at 0 and a ramp to "
        f"{cfg['l2_loss_scale']:g} over {cfg['l2_loss_ramp']} steps; perturbations in training: "
        f"{cfg['perturb'] or 'none'}"
        + (f" (JPEG gradient: {cfg.get('jpeg_gradient', 'straight')})" if "jpeg" in cfg["perturb"] else "")
        + (f"; curriculum: strength from 0 up by 1/{cfg['curriculum']} per perturbed batch decoding >= "
           f"{cfg['curriculum_hold']:g} (full strength at step {summary.get('full_strength_at')}, ended at "
           f"{summary.get('perturbation_strength', 1):.2f})" if cfg.get("curriculum") else ""),
        (f"- continued from: `{summary['init_from']}` (its own model card; the image-loss schedule starts at "
          f"step 0)" if summary.get("init_from") else
         "- started from He-initialised weights"),
        f"- run: {summary['steps']} steps in {summary['seconds']:.0f} s (stopped by {summary['stopped']}); image loss "
        f"switched on / at full weight after steps {summary.get('l2_schedule')}",
        f"- machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}",
    ]
    if v:
        lines += ["", f"## Held-out quality ({', '.join(summary['val_dir'])}: {v['images']} seeded crops)", "",
                  f"- bit accuracy {v['bit_accuracy']:.4f}; strings decoded without error {v['perfect']:.1%}",
                  f"- PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f} (fingerprinted, saved in 8 bits, vs clean)"]
    return write_text_atomic(folder / "model_card.md", "\n".join(lines) + "\n")


def _samples(path: Path, enc, clean: torch.Tensor, seed: int) -> None:
    """Rows: clean, fingerprinted, |difference| x 10."""
    from torchvision.utils import save_image

    from .bits import random_bits

    with torch.no_grad():
        bits = random_bits(len(clean), enc.fingerprint_length, torch.Generator().manual_seed(seed)).to(clean.device)
        fp = enc(bits, clean)
    buf = io.BytesIO()
    save_image(torch.cat([clean, fp, ((fp - clean).abs() * 10).clamp(0, 1)]).cpu(), buf, nrow=len(clean), padding=2,
               format="png")
    from ..atomic import write_bytes_atomic

    write_bytes_atomic(path, buf.getvalue())


def cmd_embed(args) -> int:
    from ..atomic import RunFolder, write_text_atomic
    from .bits import parse_bits, random_bits
    from .weights import load_model

    device = resolve_device(args.device)
    enc = load_model(args.encoder_path, "encoder", args.image_resolution, args.fingerprint_length, device)
    dec = load_model(args.check, "decoder", enc.resolution, enc.fingerprint_length, device) if args.check else None
    check_celeba(enc.resolution, args.use_celeba_preprocessing, "encoder")
    paths = _images(args.data_dir)
    n = enc.fingerprint_length
    g = torch.Generator().manual_seed(args.seed)
    fixed = None
    if args.fingerprint is not None:
        fixed = torch.from_numpy(parse_bits(args.fingerprint, n, "--fingerprint: ").astype(np.float32))
    elif args.identical_fingerprints:
        fixed = random_bits(1, n, g)[0]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise DIFError(f"two images of {shown(args.data_dir)} share a name stem; their PNG outputs would collide")
    owned = lambda name: name in ("fingerprinted_images", "embedded_fingerprints.txt", "summary.json")  # noqa: E731
    psnr_db = _frame_psnr(enc, args.psnr, args.use_celeba_preprocessing)
    with RunFolder(args.output_dir, args.overwrite, owned, what="--output_dir") as run:
        out = run.tmp / "fingerprinted_images"
        out.mkdir()
        embed = _embed_frames if psnr_db else _embed_squares
        lines, psnrs, ssims, accs = embed(args, paths, enc, dec, fixed, g, psnr_db, out, device)
        if not lines:
            raise DIFError(f"no readable images in {shown(args.data_dir)}")
        write_text_atomic(run.tmp / "embedded_fingerprints.txt",
                          fingerprint_lines([n for n, _ in lines], [b for _, b in lines]))
        protocol = f"whole photo at its own size, {psnr_db:g} dB" if psnr_db else \
            f"centre square resized to {enc.resolution} px"
        summary = {"encoder": str(args.encoder_path), "images": len(lines), "resolution": enc.resolution,
                   "protocol": protocol, "fingerprint_length": n, "identical_fingerprints": fixed is not None,
                   "seed": args.seed,
                   "psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean())}
        if accs:
            summary["bit_accuracy"] = float(torch.cat(accs).mean())
        _summary(run.tmp / "summary.json", summary)
        run.commit()
    extra = f", bit accuracy {summary['bit_accuracy']:.4f}" if accs else ""
    print(f"fingerprinted {len(lines)} images: PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.4f}{extra}; "
          f"wrote {args.output_dir}")
    return 0


def _frame_psnr(enc, psnr: Optional[float], celeba: bool) -> Optional[float]:
    """The PSNR a whole-photo pair embeds at (None for a pair of the square protocol)."""
    if psnr is not None and not enc.frame_psnr:
        raise DIFError("--psnr sets the strength of a whole-photo pair; this encoder fingerprints a square "
                       f"{enc.resolution} px thumbnail")
    if psnr is not None:
        from .frame import check_psnr

        check_psnr(psnr)
    _whole_refuses_celeba(enc, celeba)
    return psnr if psnr is not None else enc.frame_psnr


def _embed_squares(args, paths, enc, dec, fixed, g, psnr_db, out: Path, device):
    """Each photo's centre square (or CelebA crop) at the pair's resolution fingerprinted, saved as
    PNG (the paper's protocol; ``psnr_db`` is None)."""
    from PIL import Image

    from .bits import bit_accuracy, bits_to_str, decode_bits, random_bits
    from .train import psnr, ssim

    n = enc.fingerprint_length
    lines, psnrs, ssims, accs = [], [], [], []
    for kept, x in _batches(paths, enc.resolution, args.use_celeba_preprocessing, args.batch_size, args.workers,
                            not args.quiet, "Embedding"):
        bits = fixed.expand(len(x), n).clone() if fixed is not None else random_bits(len(x), n, g)
        with torch.no_grad():
            y = (enc(bits.to(device), x.to(device)).cpu() * 255).round() / 255
        psnrs.append(psnr(y, x))
        ssims.append(ssim(y, x))
        if dec is not None:
            with torch.no_grad():
                accs.append(torch.from_numpy(bit_accuracy(bits, decode_bits(dec(y.to(device))).cpu())))
        for p, img, b in zip(kept, y, bits):
            arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(out / f"{p.stem}.png")
            lines.append((f"{p.stem}.png", bits_to_str(b)))
    return lines, psnrs, ssims, accs


def _whole_refuses_celeba(model, celeba: bool) -> None:
    """The CelebA preprocessing crops to a square; a whole-photo pair works on the photo whole."""
    if model.frame_psnr and celeba:
        raise DIFError("--use_celeba_preprocessing crops to a square: a whole-photo pair works on the photo whole")


def _full_size(img: torch.Tensor) -> torch.Tensor:
    return img


def _embed_frames(args, paths, enc, dec, fixed, g, psnr_db: float, out: Path, device):
    """Each photo fingerprinted whole at its own size (``dif.artificial.frame``), saved as PNG."""
    from PIL import Image

    from ..data import stream_images
    from .bits import bit_accuracy, bits_to_str, decode_bits, random_bits
    from .frame import embed_frame, read_frame
    from .train import psnr, ssim

    n = enc.fingerprint_length
    lines, psnrs, ssims, accs = [], [], [], []
    for idx, cols in stream_images(paths, [_full_size], batch_size=1, workers=args.workers, progress=not args.quiet,
                                   desc="Embedding"):
        for i, x in zip(idx, cols[0]):
            x = x[None].to(device)
            bits = fixed[None].clone() if fixed is not None else random_bits(1, n, g)
            with torch.no_grad():
                y = (embed_frame(enc, bits.to(device), x, psnr_db) * 255).round() / 255
            psnrs.append(psnr(y, x).cpu())
            ssims.append(ssim(y, x).cpu())
            if dec is not None:
                with torch.no_grad():
                    got = decode_bits(read_frame(dec, y)[0]).cpu()
                accs.append(torch.from_numpy(bit_accuracy(bits, got)))
            arr = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            Image.fromarray(arr).save(out / f"{paths[i].stem}.png")
            lines.append((f"{paths[i].stem}.png", bits_to_str(bits[0])))
    return lines, psnrs, ssims, accs


def _decode(args, dec, device, desc: str):
    """(names, N x n decoded bits) of the images of --data_dir."""
    from .bits import decode_bits

    check_celeba(dec.resolution, args.use_celeba_preprocessing, "decoder")
    _whole_refuses_celeba(dec, args.use_celeba_preprocessing)
    names, rows = [], []
    paths = _images(args.data_dir)
    if dec.frame_psnr:
        from ..data import stream_images
        from .frame import ReadCanvas, read_frame

        for idx, cols in stream_images(paths, [ReadCanvas(dec.resolution)], batch_size=args.batch_size,
                                       workers=args.workers, progress=not args.quiet, desc=desc):
            if idx:
                with torch.no_grad():
                    rows.append(decode_bits(read_frame(dec, torch.stack(cols[0]).to(device))[0]).cpu().numpy()
                                .astype(np.uint8))
                names += [paths[i].name for i in idx]
    else:
        for kept, x in _batches(paths, dec.resolution, args.use_celeba_preprocessing, args.batch_size, args.workers,
                                not args.quiet, desc):
            with torch.no_grad():
                rows.append(decode_bits(dec(x.to(device))).cpu().numpy().astype(np.uint8))
            names += [p.name for p in kept]
    if not names:
        raise DIFError(f"no readable images in {shown(args.data_dir)}")
    return names, np.concatenate(rows)


def cmd_detect(args) -> int:
    from ..atomic import RunFolder, write_text_atomic
    from .bits import bit_accuracy, bits_to_str
    from .weights import load_model

    device = resolve_device(args.device)
    dec = load_model(args.decoder_path, "decoder", args.image_resolution, args.fingerprint_length, device)
    ref = read_fingerprint_file(args.fingerprints, dec.fingerprint_length) if args.fingerprints else None
    owned = lambda name: name in ("detected_fingerprints.txt", "summary.json")  # noqa: E731
    with RunFolder(args.output_dir, args.overwrite, owned, what="--output_dir") as run:
        names, bits = _decode(args, dec, device, "Detecting")
        write_text_atomic(run.tmp / "detected_fingerprints.txt", fingerprint_lines(names, [bits_to_str(b) for b in bits]))
        summary = {"decoder": str(args.decoder_path), "images": len(names), "resolution": dec.resolution,
                   "fingerprint_length": dec.fingerprint_length}
        if ref is not None:
            pairs = [(ref[n], b) for n, b in zip(names, bits) if n in ref]
            if not pairs:
                raise DIFError(f"no image of {shown(args.data_dir)} is named in {shown(args.fingerprints)}")
            acc = bit_accuracy(np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]))
            summary.update(matched=len(pairs), bit_accuracy=float(acc.mean()), perfect=float((acc == 1).mean()))
        _summary(run.tmp / "summary.json", summary)
        run.commit()
    extra = (f"; bit accuracy {summary['bit_accuracy']:.4f} over {summary['matched']} images named in "
             f"{shown(args.fingerprints)}") if ref is not None else ""
    print(f"decoded {len(names)} images{extra}; wrote {args.output_dir}")
    return 0


def cmd_attribute(args) -> int:
    from ..atomic import RunFolder, csv_text, write_text_atomic
    from .bits import attribute
    from .weights import load_model

    device = resolve_device(args.device)
    dec = load_model(args.decoder_path, "decoder", args.image_resolution, args.fingerprint_length, device)
    users, db = read_database(args.database, dec.fingerprint_length)
    owned = lambda name: name in ("attribution.csv", "summary.json")  # noqa: E731
    with RunFolder(args.output_dir, args.overwrite, owned, what="--output_dir") as run:
        names, bits = _decode(args, dec, device, "Attributing")
        res = attribute(bits, users, db, args.alpha)
        rows = [[n, r.user if r.attributed else "", r.matching_bits, f"{r.p_value:.6g}", int(r.attributed)]
                for n, r in zip(names, res)]
        write_text_atomic(run.tmp / "attribution.csv", csv_text(["path", "user", "matching_bits", "p_value", "attributed"], rows))
        per_user: dict[str, int] = {}
        for r in res:
            if r.attributed:
                per_user[r.user] = per_user.get(r.user, 0) + 1
        summary = {"decoder": str(args.decoder_path), "database": str(args.database), "users": len(users),
                   "images": len(names), "alpha": args.alpha, "test": "one-sided binomial (n bits, p 1/2), "
                   "Bonferroni over the users", "attributed": sum(r.attributed for r in res),
                   "unattributed": sum(not r.attributed for r in res), "per_user": per_user}
        _summary(run.tmp / "summary.json", summary)
        run.commit()
    print(f"{summary['attributed']} of {len(names)} images attributed at alpha {args.alpha:g} among {len(users)} "
          f"users ({summary['unattributed']} unattributed); wrote {args.output_dir}")
    return 0


def cmd_whole(args) -> int:
    """The --init_from pair's networks, with the whole-photo protocol and its PSNR recorded in both
    weight files (``dif.artificial.frame``), and a model card naming where they came from."""
    from ..atomic import RunFolder, write_text_atomic
    from .frame import check_psnr
    from .weights import load_model, save_model

    check_psnr(args.psnr)
    enc = load_model(args.init_from / "encoder.pth", "encoder")
    dec = load_model(args.init_from / "decoder.pth", "decoder", enc.resolution, enc.fingerprint_length)
    enc.frame_psnr = dec.frame_psnr = float(args.psnr)
    owned = lambda name: name in ("encoder.pth", "decoder.pth", "model_card.md")  # noqa: E731
    with RunFolder(args.output_dir, args.overwrite, owned, what="--output_dir") as run:
        save_model(run.tmp / "encoder.pth", enc)
        save_model(run.tmp / "decoder.pth", dec)
        write_text_atomic(run.tmp / "model_card.md", "\n".join([
            "# Artificial-fingerprint pair for whole photos: model card", "",
            f"- made by: `{command_line()}`",
            f"- networks: those of `{args.init_from}` unchanged ({enc.resolution} px, {enc.fingerprint_length} bits"
            + (", grey level only" if enc.luma else "") + "; its own model card says how they were trained)",
            f"- protocol: each photo fingerprinted whole at its own size, the change set to {args.psnr:g} dB per "
            "photo, read whole (`dif.artificial.frame`)", ""]))
        run.commit()
    print(f"wrote a whole-photo pair at {args.psnr:g} dB from {args.init_from} to {args.output_dir}")
    return 0


def cmd_detector(args) -> int:
    from .method import make_detector

    make_detector(args)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()
    return {"train": cmd_train, "embed": cmd_embed, "detect": cmd_detect, "attribute": cmd_attribute,
            "detector": cmd_detector, "whole": cmd_whole}[args.command](args)


def cli() -> int:
    """The installed command's entry point (``[project.scripts]`` in pyproject.toml)."""
    return run_main(main)


if __name__ == "__main__":
    sys.exit(cli())
