"""Training our own DnCNN residual extractor (blind Gaussian denoising on clean photos).

    python -m dif.dncnn_train IMAGE_DIR [IMAGE_DIR ...] OUT.pt [--minutes 100] [--val LIVE1_DIR]

The network has the authors' layout (17 3x3 convolutions, 64 features, no bias, BatchNorm,
residual output). Each step draws random patches of the training photos with random flips and
90-degree rotations, adds Gaussian noise of a random level in [0, --sigma-max]/255 per patch,
and regresses the noise (MSE). Grey photos are used as three equal channels; ``--with-package-
photos`` adds the colour photos that ship inside matplotlib and scikit-learn. Writes OUT.pt
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

from .data import ImageReadError, center_crop, list_images, load_image
from .denoiser import DnCNN, DnCNNExtractor, save_dncnn
from .errors import DIFError

log = logging.getLogger(__name__)


@dataclass
class DnCNNTrainConfig:
    layers: int = 17
    features: int = 64
    patch: int = 40
    batch: int = 32
    lr: float = 1e-3
    sigma_max: float = 55.0
    steps: int = 100_000          # upper bound; --minutes usually stops first
    minutes: float = 100.0
    seed: int = 0
    crop: int = 256               # size of the stored mean residual
    snapshot_minutes: float = 0.0  # > 0: save OUT.snapshot.pt this often (weights only)


def package_photos() -> list[Path]:
    """Colour photographs shipped inside packages we already depend on."""
    out = []
    try:
        import matplotlib.cbook as cbook

        out.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:  # pragma: no cover - depends on the matplotlib build
        pass
    try:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        out += sorted(folder.glob("*.jpg"))
    except Exception:  # pragma: no cover
        pass
    return [p for p in out if p.is_file()]


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


def sample_batch(imgs: list[torch.Tensor], cfg: DnCNNTrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clean patches and their noise (sigma ~ U[0, sigma_max] / 255 per patch)."""
    p = cfg.patch
    clean = []
    for _ in range(cfg.batch):
        x = imgs[rng.integers(len(imgs))]
        top = rng.integers(0, x.shape[-2] - p + 1)
        left = rng.integers(0, x.shape[-1] - p + 1)
        patch = x[:, top:top + p, left:left + p]
        k = int(rng.integers(4))
        if k:
            patch = torch.rot90(patch, k, dims=(1, 2))
        if rng.random() < 0.5:
            patch = patch.flip(-1)
        clean.append(patch)
    clean_t = torch.stack(clean)
    sigma = torch.from_numpy(rng.uniform(0, cfg.sigma_max / 255.0, size=(cfg.batch, 1, 1, 1))).float()
    noise = torch.from_numpy(rng.standard_normal(clean_t.shape)).float() * sigma
    return clean_t + noise, noise


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


def train_dncnn(photos: list[torch.Tensor], cfg: DnCNNTrainConfig, progress: bool = False,
                snapshot: Optional[Path] = None, device: str | torch.device = "cpu") -> tuple[DnCNN, dict]:
    """Train until ``cfg.steps`` or ``cfg.minutes``; returns the net and a log of the run.

    With ``snapshot`` and ``cfg.snapshot_minutes > 0`` the weights are written there (atomically)
    every ``snapshot_minutes``, so a long run can be inspected, or kept if it is cut short."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = DnCNN(3, cfg.layers, cfg.features)
    net = net.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    deadline = t0 + cfg.minutes * 60
    losses = []

    def run_log() -> dict:
        return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "final_loss": float(np.mean(losses[-50:]))}

    bar = tqdm(total=cfg.steps, desc="DnCNN", disable=not progress, dynamic_ncols=True)
    step = 0
    next_snap = t0 + cfg.snapshot_minutes * 60
    while step < cfg.steps and time.perf_counter() < deadline:
        # cosine decay over the time budget (or the step budget, whichever is nearer)
        frac = max((time.perf_counter() - t0) / (cfg.minutes * 60), step / cfg.steps)
        for grp in opt.param_groups:
            grp["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        noisy, noise = sample_batch(photos, cfg, rng)
        pred = net(noisy.to(device, memory_format=torch.channels_last))
        loss = F.mse_loss(pred, noise.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        bar.update()
        if step % 20 == 0:
            bar.set_postfix_str(f"loss {np.mean(losses[-20:]):.2e}")
        if snapshot is not None and cfg.snapshot_minutes > 0 and time.perf_counter() >= next_snap:
            next_snap += cfg.snapshot_minutes * 60
            save_dncnn(snapshot, net, None, {"train": asdict(cfg), "run": run_log(), "snapshot": True})
            log.info("snapshot at step %d: %s", step, snapshot)
    bar.close()
    net = net.to(memory_format=torch.contiguous_format).eval()
    return net, run_log()


def _card(path: Path, cfg: DnCNNTrainConfig, sources: list[str], n_photos: int, run: dict, quality: dict) -> str:
    rows = "\n".join(f"| {s} | {q['noisy']:.2f} dB | {q['denoised']:.2f} dB |" for s, q in quality.items())
    return f"""# DnCNN residual extractor: model card

- file: `{path.name}` (load with `dif.denoiser.load_dncnn`, or `--denoiser dncnn:{path}`)
- layout: {cfg.layers} layers, {cfg.features} features, 3 channels, no bias, BatchNorm, residual output
- training data ({n_photos} photos): {', '.join(sources)}
- recipe: blind Gaussian noise sigma in [0, {cfg.sigma_max:g}]/255, {cfg.patch}x{cfg.patch} patches with flips and
  rotations, batch {cfg.batch}, Adam lr {cfg.lr:g} with cosine decay over the time budget, seed {cfg.seed};
  near-identity ("delta") start of the middle convolutions (`DnCNN.reset_parameters`: with plain He
  init a 17-layer stack predicts zero for hundreds of steps)
- run: {run['steps']} steps in {run['seconds']:.0f} s, final training MSE {run['final_loss']:.3e}
- machine: {platform.machine()}, {torch.get_num_threads()} threads, {platform.processor() or platform.platform()},
  torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}
- mean residual: centre {cfg.crop}x{cfg.crop} crops of the training photos at least that large

## Denoising quality (held-out validation photos)

| noise sigma | noisy input PSNR | denoised PSNR |
|---|---|---|
{rows}

Judge this extractor by detection (`benchmarks/official_fingerprints.py`), not by PSNR alone.

```json
{json.dumps(asdict(cfg), indent=1)}
```
"""


def main(argv: Sequence[str] | None = None) -> int:
    from .atomic import write_text_atomic
    from .cli import Parser, resolve_device, run_main, setup_logging

    def _main(argv):
        d = DnCNNTrainConfig()
        p = Parser(description="Train a DnCNN residual extractor on clean photos.")
        p.add_argument("paths", nargs="+", help="IMAGE_DIR [IMAGE_DIR ...] OUT.pt")
        p.add_argument("--val", type=Path, default=None, help="held-out photos for PSNR (e.g. LIVE1)")
        p.add_argument("--with-package-photos", action="store_true", help="add the colour photos of matplotlib/sklearn")
        for name in ("layers", "features", "patch", "batch", "steps", "seed", "crop"):
            p.add_argument(f"--{name}", type=int, default=getattr(d, name))
        for name in ("lr", "sigma_max", "minutes", "snapshot_minutes"):
            p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name))
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--quiet", action="store_true")
        args = p.parse_args(argv)
        setup_logging()
        if len(args.paths) < 2:
            raise DIFError("give at least one IMAGE_DIR and the OUT.pt path")
        *dirs, out = args.paths
        out = Path(out)
        cfg = DnCNNTrainConfig(**{k: getattr(args, k) for k in asdict(d)})
        if cfg.layers < 2 or cfg.features < 1 or cfg.patch < 8 or cfg.batch < 1 or cfg.minutes <= 0:
            raise DIFError("layers >= 2, features >= 1, patch >= 8, batch >= 1 and minutes > 0 are required")
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
                               device=device)
        quality = {}
        if args.val:
            val = load_photos(list_images(args.val), 64)
            for s in (15, 25):
                noisy, den = evaluate_psnr(net, val, s)
                quality[str(s)] = {"noisy": noisy, "denoised": den}
                print(f"sigma {s}: noisy {noisy:.2f} dB -> denoised {den:.2f} dB on {len(val)} photos")
        mean = mean_residual(net, photos, cfg.crop)
        save_dncnn(out, net, mean, {"train": asdict(cfg), "run": run, "psnr": quality, "sources": sources})
        write_text_atomic(out.with_suffix(".md"), _card(out, cfg, sources, len(photos), run, quality))
        print(f"{run['steps']} steps in {run['seconds']:.0f} s; saved {out} and {out.with_suffix('.md')}")
        return 0

    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
