"""Training our own DnCNN residual extractor (blind Gaussian denoising on clean photos).

    python -m dif.dncnn_train IMAGE_DIR [IMAGE_DIR ...] OUT.pt [--minutes 100] [--val LIVE1_DIR]

The network has the authors' layout (17 3x3 convolutions, 64 features, no bias, BatchNorm,
residual output). Each step draws random patches of the training photos with random flips and
90-degree rotations, adds Gaussian noise of a random level in [0, --sigma-max]/255 per patch,
and regresses the noise (MSE). Grey photos are used as three equal channels; ``--with-package-
photos`` adds the colour photos that ship inside matplotlib and scikit-learn, which then give
half of the patches (``--colour-fraction``), and half of the grey patches are tinted per channel
(``--tint``): trained on grey alone, a blind DnCNN calls every colour difference noise. The saved
weights are a moving average of the run's weights (``--ema``). Writes OUT.pt
(``save_dncnn``: weights + the mean residual of the clean photos at --crop) and a model card
OUT.md with the data, steps, wall time, machine and the PSNR on --val.
"""
from __future__ import annotations

import json
import logging
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import ImageReadError, center_crop, list_images, load_image, package_photos
from .extractors import DnCNN, DnCNNExtractor, load_dncnn, save_dncnn
from .extractors.base import weights_identity
from .extractors.dncnn import fold_batchnorm
from .config import opt
from .errors import DIFError
from .schedules import budget_fraction, set_cosine_lr

log = logging.getLogger(__name__)


@dataclass
class DnCNNTrainConfig:
    """The DnCNN training recipe; each field declares its flag, help and range (``dif.config.opt``)."""

    layers: int = opt(17, "convolution layers", low=2, high=200)
    features: int = opt(64, "feature channels", low=1, high=1024)
    patch: int = opt(40, "training patch size in pixels", low=8, high=1024)
    batch: int = opt(32, "patches per step", low=1, high=65_536)
    lr: float = opt(1e-3, "Adam learning rate", low=0, high=10, low_open=True)
    sigma_max: float = opt(55.0, "noise sigma drawn in [0, SIGMA_MAX] grey levels", low=0, high=255, low_open=True)
    steps: int = opt(100_000, "step limit (--minutes usually stops first)", low=1, high=10**9)
    minutes: float = opt(100.0, "wall-clock budget", low=0, high=10_000, low_open=True)
    seed: int = opt(0, "seed of the patches, noise and weights", low=0, high=2**32 - 1)
    crop: int = opt(256, "size of the stored mean residual", low=16, high=8192)
    snapshot_minutes: float = opt(0.0, "> 0: save OUT.snapshot.pt this often (weights only)", low=0, high=10_000)
    colour_fraction: float = opt(0.5, "share of patches drawn from colour photos (when there are any)", low=0, high=1)
    tint: float = opt(0.5, "share of grey patches given a random per-channel gain and gamma", low=0, high=1)
    jpeg_fraction: float = opt(0.0, "share of patches saved as JPEG before the noise is added (the target is then "
                                    "the JPEG error plus the noise: a residual made for recompressed images)",
                               low=0, high=1)
    jpeg_min_quality: int = opt(50, "lowest JPEG quality drawn for --jpeg-fraction", low=1, high=100)
    jpeg_max_quality: int = opt(95, "highest JPEG quality drawn for --jpeg-fraction", low=1, high=100)
    ema: float = opt(0.999, "decay of the weight average that is saved (0: the last weights)", low=0, high=1,
                     high_open=True)


def load_photos(paths: Sequence[Path], min_size: int) -> list[torch.Tensor]:
    """Decode photos (3 x H x W in [0, 1]); those smaller than ``min_size`` are skipped."""
    imgs = []
    for p in paths:
        try:
            x = load_image(p)
        except ImageReadError as exc:
            log.warning("skipping %s", exc)
            continue
        if min(x.shape[-2:]) >= min_size:
            imgs.append(x)
    return imgs


def is_grey(x: torch.Tensor) -> bool:
    """True for a 3-channel image whose channels are equal (a grey photo)."""
    return bool((x[0] == x[1]).all() and (x[1] == x[2]).all())


def split_colour(imgs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(grey photos, colour photos)."""
    grey: list[torch.Tensor] = []
    colour: list[torch.Tensor] = []
    for x in imgs:
        (grey if is_grey(x) else colour).append(x)
    return grey, colour


def tint_patch(patch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A grey patch made colour: each channel gets its own gain in [0.7, 1] and gamma in
    [2/3, 3/2], so the channels differ and their edges stay where the luminance edges are.
    Without colour patches a blind DnCNN learns that any difference between channels is noise,
    and its residual of a colour photo is mostly the photo's own chroma."""
    gain = torch.from_numpy(rng.uniform(0.7, 1.0, size=(3, 1, 1))).float()
    gamma = torch.from_numpy(np.exp(rng.uniform(-math.log(1.5), math.log(1.5), size=(3, 1, 1)))).float()
    return patch.clamp_min(0).pow(gamma) * gain


def sample_batch(imgs: list[torch.Tensor], cfg: DnCNNTrainConfig, rng: np.random.Generator,
                 colour: Optional[list[torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patches and what separates them from the clean patch: Gaussian noise (sigma ~
    U[0, sigma_max] / 255 per patch), plus, for a share ``cfg.jpeg_fraction`` of the patches, the
    error of a JPEG save at a quality drawn from [jpeg_min_quality, jpeg_max_quality] (the patch is
    cut from a larger compressed window at a random offset, so its 8 x 8 block grid falls anywhere,
    as in a cropped image). Returns (input, input - clean).

    ``imgs`` are drawn from uniformly; with ``colour`` photos, a share ``cfg.colour_fraction`` of
    the patches comes from those instead. A share ``cfg.tint`` of the grey patches is tinted
    (``tint_patch``)."""
    from .robustness import jpeg

    p = cfg.patch
    clean, seen = [], []
    for _ in range(cfg.batch):
        use_colour = bool(colour) and rng.random() < cfg.colour_fraction
        pool = colour if use_colour else imgs
        x = pool[rng.integers(len(pool))]
        compress = cfg.jpeg_fraction > 0 and rng.random() < cfg.jpeg_fraction
        w = min(p + 8, x.shape[-2], x.shape[-1]) if compress else p
        top = rng.integers(0, x.shape[-2] - w + 1)
        left = rng.integers(0, x.shape[-1] - w + 1)
        patch = x[:, top:top + w, left:left + w]
        if compress:
            tinted = not use_colour and cfg.tint > 0 and rng.random() < cfg.tint and is_grey(patch)
            if tinted:
                patch = tint_patch(patch, rng)
            q = int(rng.integers(cfg.jpeg_min_quality, cfg.jpeg_max_quality + 1))
            dy, dx = (int(v) for v in rng.integers(0, w - p + 1, size=2))
            pair = torch.stack([patch, jpeg(patch.clamp(0, 1), q)])[:, :, dy:dy + p, dx:dx + p]
        else:
            pair = patch[None]
        k = int(rng.integers(4))
        if k:
            pair = torch.rot90(pair, k, dims=(2, 3))
        if rng.random() < 0.5:
            pair = pair.flip(-1)
        if not compress and not use_colour and cfg.tint > 0 and rng.random() < cfg.tint and is_grey(pair[0]):
            pair = tint_patch(pair[0], rng)[None]
        clean.append(pair[0])
        seen.append(pair[-1])
    clean_t, seen_t = torch.stack(clean), torch.stack(seen)
    sigma = torch.from_numpy(rng.uniform(0, cfg.sigma_max / 255.0, size=(cfg.batch, 1, 1, 1))).float()
    noise = torch.from_numpy(rng.standard_normal(clean_t.shape)).float() * sigma
    noisy = seen_t + noise
    return noisy, noisy - clean_t


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.clamp(0, 1), b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def evaluate_psnr(net: DnCNN, photos: list[torch.Tensor], sigma: float, seed: int = 0) -> tuple[float, float]:
    """Mean PSNR of (noisy, denoised) on ``photos`` at noise ``sigma``/255 (fixed seed)."""
    ext = DnCNNExtractor(net, None)  # the residual exactly as extraction computes it (padding included)
    dev = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    noisy_p, den_p = [], []
    for x in photos:
        noisy = x + torch.randn(x.shape, generator=g) * sigma / 255.0
        res = ext(noisy.unsqueeze(0).to(dev))[0].cpu()
        noisy_p.append(psnr(noisy, x))
        den_p.append(psnr(noisy - res, x))
    return float(np.mean(noisy_p)), float(np.mean(den_p))


@torch.no_grad()
def mean_residual(net: DnCNN, photos: list[torch.Tensor], crop: int) -> Optional[torch.Tensor]:
    """Mean residual of clean photos (centre crops of ``crop``), the counterpart of the
    authors' clean_real.npy."""
    ext = DnCNNExtractor(net, None)
    dev = next(net.parameters()).device
    crops = [center_crop(x, (crop, crop)) for x in photos if min(x.shape[-2:]) >= crop]
    if not crops:
        return None
    total = torch.zeros(3, crop, crop)
    for i in range(0, len(crops), 4):
        total += ext(torch.stack(crops[i:i + 4]).to(dev)).sum(0).cpu()
    return total / len(crops)


class WeightAverage:
    """Exponential moving average of a network's parameters and BatchNorm statistics (Polyak
    averaging). The saved denoiser is the average, which smooths out the step-to-step wander of
    the last weights (not measured on its own: it came in together with the colour recipe)."""

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.net = copy.deepcopy(net).eval()
        for q in self.net.parameters():
            q.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        """Move the average towards ``net``; integer buffers (BatchNorm's step count) are copied."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))  # short memory at the start
        avg, cur = [], []
        for a, b in zip(self.net.state_dict().values(), net.state_dict().values()):
            if a.is_floating_point():
                avg.append(a)
                cur.append(b)
            else:
                a.copy_(b)
        torch._foreach_lerp_(avg, cur, 1 - d)


def train_dncnn(photos: list[torch.Tensor], cfg: DnCNNTrainConfig, progress: bool = False,
                snapshot: Optional[Path] = None, device: str | torch.device = "cpu",
                init: Optional[DnCNN] = None, teacher: Optional[DnCNN] = None) -> tuple[DnCNN, dict]:
    """Train until ``cfg.steps`` or ``cfg.minutes``; returns the net (the weight average when
    ``cfg.ema > 0``) and a log of the run. ``init`` starts from those weights (fine-tuning).

    With ``teacher`` the target is the teacher's output on the same noisy patch instead of the
    noise (distillation): a smaller network learns the residual a larger one computes, which is
    what a fingerprint trained on the larger one's residuals needs at evaluation.

    With ``snapshot`` and ``cfg.snapshot_minutes > 0`` the weights are written there (atomically)
    every ``snapshot_minutes``, so a long run can be inspected, or kept if it is cut short."""
    import copy

    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    grey, colour = split_colour(photos)
    if not grey:
        grey, colour = colour, []
    if init is not None:
        net = copy.deepcopy(init)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = DnCNN(3, cfg.layers, cfg.features)
    net = net.to(device, memory_format=torch.channels_last).train()
    if teacher is not None:
        teacher = fold_batchnorm(teacher.dncnn).to(device, memory_format=torch.channels_last)
    avg = WeightAverage(net, cfg.ema) if cfg.ema > 0 else None
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    deadline = t0 + cfg.minutes * 60
    losses = []

    def run_log() -> dict:
        return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "final_loss": float(np.mean(losses[-50:])),
                "grey_photos": len(grey), "colour_photos": len(colour)}

    def result() -> DnCNN:
        return avg.net if avg is not None else net

    bar = tqdm(total=cfg.steps, desc="DnCNN", disable=not progress, dynamic_ncols=True)
    step = 0
    next_snap = t0 + cfg.snapshot_minutes * 60
    while step < cfg.steps and time.perf_counter() < deadline:
        # cosine decay over the time budget (or the step budget, whichever is nearer)
        set_cosine_lr(opt, cfg.lr, budget_fraction(time.perf_counter() - t0, cfg.minutes, step, cfg.steps))
        noisy, noise = sample_batch(grey, cfg, rng, colour)
        noisy = noisy.to(device, memory_format=torch.channels_last)
        if teacher is not None:
            with torch.no_grad():
                noise = teacher(noisy)
        pred = net(noisy)
        loss = F.mse_loss(pred, noise.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if avg is not None:
            avg.update(net)
        losses.append(float(loss.detach()))
        step += 1
        bar.update()
        if step % 20 == 0:
            bar.set_postfix_str(f"loss {np.mean(losses[-20:]):.2e}")
        if snapshot is not None and cfg.snapshot_minutes > 0 and time.perf_counter() >= next_snap:
            next_snap += cfg.snapshot_minutes * 60
            save_dncnn(snapshot, result(), None, {"train": asdict(cfg), "run": run_log(), "snapshot": True})
            log.info("snapshot at step %d: %s", step, snapshot)
    bar.close()
    out = result().to(memory_format=torch.contiguous_format).eval()
    return out, run_log()


def _card(path: Path, cfg: DnCNNTrainConfig, sources: list[str], n_photos: int, run: dict, quality: dict,
          init: Optional[str] = None, command: str = "", teacher: Optional[str] = None) -> str:
    rows = "\n".join(f"| {s} | {q['noisy']:.2f} dB | {q['denoised']:.2f} dB |" for s, q in quality.items())
    return f"""# DnCNN residual extractor: model card

- file: `{path.name}` (load with `dif.extractors.load_dncnn`, or `--extractor dncnn:{path}`)
- made by: `python -m dif.dncnn_train {command}`
- layout: {cfg.layers} layers, {cfg.features} features, 3 channels, no bias, BatchNorm, residual output
- training data ({n_photos} photos): {', '.join(sources)}
- photos: {run['grey_photos']} grey (used as three equal channels), {run['colour_photos']} colour;
  {cfg.colour_fraction:g} of the patches from the colour photos, {cfg.tint:g} of the grey patches tinted (a random
  gain and gamma per channel: trained on grey alone, a blind DnCNN calls every colour difference noise)
- recipe: blind Gaussian noise sigma in [0, {cfg.sigma_max:g}]/255{f"; {cfg.jpeg_fraction:g} of the patches saved as JPEG first (quality {cfg.jpeg_min_quality}-{cfg.jpeg_max_quality}, block grid at a random offset; the target is the JPEG error plus the noise)" if cfg.jpeg_fraction else ""}, {cfg.patch}x{cfg.patch} patches with flips and
  rotations, batch {cfg.batch}, Adam lr {cfg.lr:g} with cosine decay over the time budget, seed {cfg.seed};
  {'started from `' + init + '`' if init else 'near-identity ("delta") start of the middle convolutions (`DnCNN.reset_parameters`: with plain He init a 17-layer stack predicts zero for hundreds of steps)'};
  {f'the saved weights are the moving average (decay {cfg.ema:g}) of the weights over the run' if cfg.ema > 0 else 'the saved weights are the last ones'}
{f"- distilled: the target of each patch is the residual `{teacher}` computes of it, not the added noise" + chr(10) if teacher else ""}- run: {run['steps']} steps in {run['seconds']:.0f} s, final training MSE {run['final_loss']:.3e}
- machine: {platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or platform.platform()},
  torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}
- mean residual: centre {cfg.crop}x{cfg.crop} crops of the training photos at least that large

## Denoising quality (held-out validation photos)

| noise sigma | noisy input PSNR | denoised PSNR |
|---|---|---|
{rows}

Judge this extractor by detection (`python benchmarks/lineage.py released`), not by PSNR alone.

```json
{json.dumps(asdict(cfg), indent=1)}
```
"""


def main(argv: Sequence[str] | None = None) -> int:
    from .atomic import write_text_atomic
    from .atomic import check_output_file
    from .cli import Parser, add_common_arguments, prog_name, resolve_device, run_main, setup_logging
    from .config import add_config_arguments, config_from_args, validate_fields

    def _main(argv):
        p = Parser(prog=prog_name("dif.dncnn_train"), description="Train a DnCNN residual extractor on clean photos.")
        p.add_argument("paths", nargs="+", help="IMAGE_DIR [IMAGE_DIR ...] OUT.pt")
        p.add_argument("--val", type=Path, default=None, help="held-out photos for PSNR (e.g. LIVE1)")
        p.add_argument("--with-package-photos", action="store_true", help="add the colour photos of matplotlib/sklearn")
        add_config_arguments(p, DnCNNTrainConfig)
        p.add_argument("--init", type=Path, default=None, help="start from these DnCNN weights (fine-tuning)")
        p.add_argument("--teacher", type=Path, default=None,
                       help="distil: regress this DnCNN's residual of each patch instead of the added noise")
        add_common_arguments(p)
        args = p.parse_args(argv)
        setup_logging()
        if len(args.paths) < 2:
            raise DIFError("give at least one IMAGE_DIR and the OUT.pt path")
        *dirs, out = args.paths
        out = Path(out)
        cfg = validate_fields(config_from_args(DnCNNTrainConfig, args))
        if cfg.jpeg_min_quality > cfg.jpeg_max_quality:
            raise DIFError(f"--jpeg-min-quality {cfg.jpeg_min_quality} is above --jpeg-max-quality {cfg.jpeg_max_quality}")
        check_output_file(out, "OUT.pt")  # before the hours of training
        check_output_file(out.with_suffix(".md"), "the model card")
        init = None
        if args.init is not None:
            init, _, _ = load_dncnn(args.init)
            if (init.layers, init.features) != (cfg.layers, cfg.features):
                raise DIFError(f"--init {args.init} has {init.layers} layers / {init.features} features, "
                               f"not {cfg.layers} / {cfg.features}")
        teacher = None
        if args.teacher is not None:
            teacher, _, _ = load_dncnn(args.teacher)
        paths = [p for dd in dirs for p in list_images(dd)]
        sources = [str(dd) for dd in dirs]
        if args.with_package_photos:
            extra = package_photos()
            paths += extra
            sources.append(f"{len(extra)} colour photos shipped with matplotlib and scikit-learn")
        photos = load_photos(paths, cfg.patch)
        if not photos:
            raise DIFError(f"no usable photos (at least {cfg.patch}x{cfg.patch}) in {', '.join(dirs)}")
        device = resolve_device(args.device)
        net, run = train_dncnn(photos, cfg, progress=not args.quiet, snapshot=out.with_suffix(".snapshot.pt"),
                               device=device, init=init, teacher=teacher)
        quality = {}
        if args.val:
            val = load_photos(list_images(args.val), 64)
            for s in (15, 25):
                noisy, den = evaluate_psnr(net, val, s)
                quality[str(s)] = {"noisy": noisy, "denoised": den}
                print(f"sigma {s}: noisy {noisy:.2f} dB -> denoised {den:.2f} dB on {len(val)} photos")
        mean = mean_residual(net, photos, cfg.crop)
        meta = {"train": asdict(cfg), "run": run, "psnr": quality, "sources": sources}
        if init is not None:
            meta["init"] = str(args.init)
        if teacher is not None:
            meta["teacher"] = {"path": str(args.teacher), "identity": weights_identity(args.teacher, str(args.teacher))}
        save_dncnn(out, net, mean, meta)
        write_text_atomic(out.with_suffix(".md"), _card(out, cfg, sources, len(photos), run, quality,
                                                        None if args.init is None else str(args.init),
                                                        " ".join(argv if argv is not None else sys.argv[1:]),
                                                        None if args.teacher is None else str(args.teacher)))
        print(f"{run['steps']} steps in {run['seconds']:.0f} s; saved {out} and {out.with_suffix('.md')}")
        return 0

    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
