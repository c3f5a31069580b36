"""Training the fingerprint encoder/decoder pair, and measuring one (bit accuracy, PSNR, SSIM).

Their recipe (defaults): Adam 1e-4, batch 64, 20 epochs, fresh random bits for every sample, loss
BCE(bits) + lambda * MSE(fingerprinted, clean) where lambda stays 0 until one batch decodes with bit
accuracy > 0.9, then 0 for ``l2_loss_await`` more steps, then ramps linearly to ``l2_loss_scale``
over ``l2_loss_ramp`` steps (starting the image loss too early is why their users' runs stick at
bit accuracy 0.5).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import opt
from ..data import ImageReadError, load_image
from ..errors import DIFError, first_line, shown
from ..schedules import budget_fraction, set_cosine_lr
from .bits import bit_accuracy, decode_bits, random_bits
from .jpeg import jpeg_through
from .models import FingerprintDecoder, FingerprintEncoder, check_resolution

log = logging.getLogger(__name__)
PERTURBATIONS = ("noise", "blur", "jpeg")
# an orthonormal basis of the colour plane orthogonal to grey (1, 1, 1): hues that leave the grey unchanged
_CHROMA_PLANE = (torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2), torch.tensor([1.0, 1.0, -2.0]) / math.sqrt(6))


@dataclass
class ArtificialConfig:
    """Encoder/decoder training settings (their defaults); each field declares its flags."""

    image_resolution: int = opt(128, "training resolution (a power of 2, >= 32)",
                                ("--image_resolution", "--image-resolution"), 32, 1024)
    fingerprint_length: int = opt(100, "bits per fingerprint", ("--fingerprint_length", "--fingerprint-length"), 1, 4096)
    batch_size: int = opt(64, "batch size", ("--batch_size", "--batch-size"), 1, 4096)
    num_epochs: int = opt(20, "epochs over the training images (or crops per epoch, see --random_crop)",
                          ("--num_epochs", "--num-epochs"), 1, 1_000_000)
    lr: float = opt(1e-4, "Adam learning rate", ("--lr",), 0, 1, low_open=True)
    lr_decay: str = opt("none", "none (theirs) or cosine: the learning rate falls to 0 over the run (over --minutes "
                                "when given, else over the epochs); a short CPU budget ends better settled",
                        ("--lr_decay", "--lr-decay"), choices=("none", "cosine"))
    l2_loss_scale: float = opt(10.0, "final weight of the image (MSE) loss", ("--l2_loss_scale", "--l2-loss-scale"), 0, 1e6)
    l2_loss_await: int = opt(1000, "steps at weight 0 after the first batch with bit accuracy > 0.9",
                             ("--l2_loss_await", "--l2-loss-await"), 0, 10**9)
    l2_loss_ramp: int = opt(3000, "steps of the linear ramp of the image-loss weight",
                            ("--l2_loss_ramp", "--l2-loss-ramp"), 1, 10**9)
    BCE_loss_weight: float = opt(1.0, "weight of the bit (BCE) loss", ("--BCE_loss_weight", "--bce-loss-weight"),
                                 0, 1e6, low_open=True)
    random_crop: bool = opt(False, "train on random crops at the resolution (with flips and random colour gains, "
                                   "so grey photos teach colour too) instead of centre crop + resize",
                            ("--random_crop", "--random-crop"))
    crops_per_epoch: int = opt(10_000, "with --random_crop: samples per epoch", ("--crops_per_epoch",
                                                                                 "--crops-per-epoch"), 1, 10**9)
    saturation: float = opt(0.0, "with --random_crop: scale each crop's colour (its difference from its grey) by a "
                                 "factor drawn from [1, 1 + S]; grey training photos with gains alone show little "
                                 "colour, and strongly coloured photos are where held-out bits are lost",
                            ("--saturation",), 0, 10)
    chroma: float = opt(0.0, "with --random_crop: add a colour field that varies across the crop (the grey of "
                             "another crop, blurred by a random factor, along a random hue, amplitude drawn from "
                             "[0, C]); gains and --saturation give one tint per crop, which real colour photos "
                             "are not", ("--chroma",), 0, 10)
    random_scale: float = opt(1.0, "with --random_crop: windows whose side is drawn log-uniformly from [R, S x R] "
                                   "(capped by the photo's shorter side) and resized down to the resolution R, as "
                                   "embed and detect resize a whole photo; 1 (the default): windows at the photo's "
                                   "own scale only", ("--random_scale", "--random-scale"), 1, 64)
    perturb: str = opt("", "train through perturbations of the fingerprinted images, comma-separated from "
                           "noise, blur, jpeg (one drawn per batch, half of the batches clean; a kind named twice is "
                           "drawn twice as often)", ("--perturb",))
    curriculum: int = opt(0, "> 0: the perturbations start at their mildest and reach full strength after this "
                             "many perturbed batches that decode with bit accuracy >= --curriculum_hold (0: full "
                             "strength from the start)", ("--curriculum",), 0, 10**9)
    curriculum_hold: float = opt(0.95, "with --curriculum: the batch bit accuracy at which the strength rises",
                                 ("--curriculum_hold", "--curriculum-hold"), 0.5, 1)
    jpeg_gradient: str = opt("straight", "gradient through the training JPEG: straight (identity) or simulated "
                                         "(a differentiable model of the codec: DCT, quantisation tables, soft "
                                         "rounding; the forward pass is the real codec either way)",
                             ("--jpeg_gradient", "--jpeg-gradient"), choices=("straight", "simulated"))
    luma: bool = opt(False, "the encoder changes only the grey level (R, G, B alike), which JPEG keeps at full "
                            "resolution and quantises finest; the default lets it change colour too",
                     ("--luma",))
    seed: int = opt(0, "seed of the weights, the bits, the crops and the batches", ("--seed",), 0, 2**32 - 1)
    minutes: float = opt(0.0, "stop after this many minutes (0: no limit)", ("--minutes",), 0, 1e6)
    use_celeba_preprocessing: bool = opt(False, "CelebA aligned images: crop 148 x 148 at the centre, resize to "
                                                "128 (their preprocessing)", ("--use_celeba_preprocessing",
                                                                             "--use-celeba-preprocessing"))

    def checked(self) -> "ArtificialConfig":
        check_resolution(self.image_resolution)
        bad = [p for p in self.perturb.split(",") if p and p not in PERTURBATIONS]
        if bad:
            raise DIFError(f"--perturb: unknown perturbation(s) {', '.join(bad)} (choose from {', '.join(PERTURBATIONS)})")
        if (self.saturation or self.chroma or self.random_scale != 1) and not self.random_crop:
            raise DIFError("--saturation, --chroma and --random_scale act on random crops: add --random_crop")
        if self.use_celeba_preprocessing and self.image_resolution != 128:
            raise DIFError("--use_celeba_preprocessing needs --image_resolution 128 (their rule)")
        return self


# ----------------------------------------------------------------------------- the lambda schedule

class L2Schedule:
    """Weight of the image loss: 0 until ``trigger`` (the first batch with bit accuracy > 0.9) is
    seen, 0 for ``wait`` more steps, then a linear ramp to ``scale`` over ``ramp`` steps. A pair
    that already decodes (a continued run) passes ``trigger=0``: its schedule starts at once."""

    def __init__(self, scale: float, wait: int, ramp: int, trigger: Optional[int] = None) -> None:
        self.scale, self.wait, self.ramp = scale, wait, ramp
        self.trigger = trigger

    def observe(self, step: int, batch_bit_accuracy: float) -> None:
        if self.trigger is None and batch_bit_accuracy > 0.9:
            self.trigger = step

    def __call__(self, step: int) -> float:
        if self.trigger is None or step <= self.trigger + self.wait:
            return 0.0
        return self.scale * min(1.0, (step - self.trigger - self.wait) / self.ramp)

    def bounds(self) -> Optional[tuple[int, int]]:
        """(last step at weight 0, first step at full weight), once triggered."""
        if self.trigger is None:
            return None
        return self.trigger + self.wait, self.trigger + self.wait + self.ramp


# ----------------------------------------------------------------------------- images

def preprocess(img: torch.Tensor, resolution: int, celeba: bool = False) -> torch.Tensor:
    """Their README's preprocessing: centre crop to the shorter side (CelebA: 148 x 148), then
    resize to ``resolution`` (bilinear, antialiased). Their detect script skipped it; we do not."""
    from ..data import center_crop

    h, w = img.shape[-2:]
    side = 148 if celeba else min(h, w)
    if celeba and min(h, w) < side:
        side = min(h, w)
    img = center_crop(img, (side, side))
    if side != resolution:
        img = F.interpolate(img[None], size=(resolution, resolution), mode="bilinear", align_corners=False,
                            antialias=True)[0].clamp(0, 1)
    return img.contiguous()


class Preprocess:
    """``preprocess`` as a picklable callable, for the decoding workers."""

    def __init__(self, resolution: int, celeba: bool = False) -> None:
        self.resolution, self.celeba = resolution, celeba

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return preprocess(img, self.resolution, self.celeba)


def check_celeba(resolution: int, celeba: bool, what: str) -> None:
    """Their CelebA preprocessing is defined for 128 px models only."""
    if celeba and resolution != 128:
        raise DIFError(f"--use_celeba_preprocessing needs a 128 px {what}")


class PhotoSet(torch.utils.data.Dataset):
    """Training images: centre-cropped + resized (their recipe), or random crops with flips and
    per-channel gains (``random_crop``: small photo sets, many samples per epoch). Decoded images are
    kept in memory up to ``cache_mb``."""

    def __init__(self, paths: Sequence[Path], cfg: ArtificialConfig, cache_mb: int = 2048) -> None:
        self.paths = list(paths)
        self.cfg = cfg
        self.res = cfg.image_resolution
        self.cache: dict[int, torch.Tensor] = {}
        self.cache_bytes = cache_mb * 2**20
        self.used = 0
        self.epoch = 0  # set before each epoch: random crops differ between epochs, reproducibly

    def vet(self, progress: bool = False) -> list[tuple[Path, str]]:
        """Decode every image once (filling the cache) and drop those that cannot be used, before
        training: an unreadable or truncated file, or one smaller than a random crop, is skipped with
        a warning that names it and counted, never met mid-run. Returns the skipped (path, reason)."""
        from tqdm.auto import tqdm

        kept, skipped = [], []
        self.cache, self.used = {}, 0
        for i, path in enumerate(tqdm(self.paths, desc="Reading images", disable=not progress, leave=False)):
            try:
                img = self._decode(path)
                h, w = img.shape[-2:]
                if self.cfg.random_crop and min(h, w) < self.res:
                    raise ImageReadError(f"{shown(path)}: an image of {w}x{h} is smaller than --image_resolution "
                                         f"{self.res}")
            except ImageReadError as exc:
                log.warning("skipping %s", first_line(exc, limit=500))
                skipped.append((path, first_line(exc, limit=500)))
                continue
            self._keep(len(kept), img)
            kept.append(path)
        self.paths = kept
        return skipped

    def _decode(self, path: Path) -> torch.Tensor:
        img = load_image(path)
        if not self.cfg.random_crop:
            img = preprocess(img, self.res, self.cfg.use_celeba_preprocessing)
        return (img * 255).round().to(torch.uint8)

    def _keep(self, i: int, img: torch.Tensor) -> None:
        if self.used + img.numel() <= self.cache_bytes:
            self.cache[i] = img
            self.used += img.numel()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.cfg.crops_per_epoch if self.cfg.random_crop else len(self.paths)

    def _image(self, i: int) -> torch.Tensor:
        if i in self.cache:
            return self.cache[i]
        img = self._decode(self.paths[i])
        self._keep(i, img)
        return img

    def __getitem__(self, idx: int) -> torch.Tensor:
        if not self.cfg.random_crop:
            return self._image(idx).float() / 255
        # reduced to 64 bits: any --seed up to 2^32 - 1 (the value is unchanged wherever it already fit)
        g = torch.Generator().manual_seed(((self.cfg.seed * 1_000_003 + self.epoch) * 1_000_003 + idx) % 2**64)
        crop = self._random_window(g, self.cfg.random_scale).float() / 255
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        gains = 0.6 + 0.4 * torch.rand(3, 1, 1, generator=g)
        crop = crop * gains
        if self.cfg.saturation > 0:  # drawn only when asked: runs without it keep their random stream
            grey = crop.mean(0, keepdim=True)
            crop = grey + (1 + self.cfg.saturation * torch.rand(1, generator=g)) * (crop - grey)
        if self.cfg.chroma > 0:  # likewise drawn only when asked
            crop = crop + self._chroma_field(g)
        return crop.clamp(0, 1)

    def _random_window(self, g: torch.Generator, scale: float = 1.0) -> torch.Tensor:
        """A random photo's random r x r window, uint8 (the photo, then the row, then the column drawn
        from ``g``). ``scale`` > 1: the window's side is first drawn log-uniformly from [r, scale x r]
        (capped by the photo) and the window resized down to r by ``preprocess``, so
        training also meets the detail density of a whole photo brought down to the resolution. The
        side is drawn only then: runs without it keep their random stream."""
        i = int(torch.randint(len(self.paths), (1,), generator=g))
        img = self._image(i)
        h, w = img.shape[-2:]
        r = self.res
        if min(h, w) < r:  # vet() removed such images; a set used without it still names the file
            raise ImageReadError(f"{shown(self.paths[i])}: an image of {w}x{h} is smaller than --image_resolution {r}")
        side = r
        if scale > 1:
            top = min(scale * r, min(h, w))
            side = int(round(r * math.exp(float(torch.rand(1, generator=g)) * math.log(top / r))))
        y, x = (int(torch.randint(h - side + 1, (1,), generator=g)), int(torch.randint(w - side + 1, (1,), generator=g)))
        win = img[:, y:y + side, x:x + side]
        if side != r:  # the same resize as a whole photo gets
            win = (preprocess(win.float() / 255, r) * 255).round().to(torch.uint8)
        return win

    def _chroma_field(self, g: torch.Generator) -> torch.Tensor:
        """3 x r x r colour with no grey component: another crop's grey, centred, blurred (down- and
        up-sampled by 1, 2, 4 or 8: the colour of photos is smoother than their detail), along a
        random direction of the plane orthogonal to (1, 1, 1), scaled by a draw from [0, chroma]."""
        r = self.res
        field = self._random_window(g).float().mean(0, keepdim=True) / 255
        factor = 2 ** int(torch.randint(4, (1,), generator=g))
        if factor > 1:
            small = F.avg_pool2d(field[None], factor)
            field = F.interpolate(small, size=(r, r), mode="bilinear", align_corners=False)[0]
        field = field - field.mean()
        theta = 2 * math.pi * float(torch.rand(1, generator=g))
        hue = (math.cos(theta) * _CHROMA_PLANE[0] + math.sin(theta) * _CHROMA_PLANE[1])[:, None, None]
        return self.cfg.chroma * float(torch.rand(1, generator=g)) * hue * field


def fixed_crops(paths: Sequence[Path], resolution: int, per_image: int, seed: int) -> torch.Tensor:
    """Evaluation crops: ``per_image`` seeded random windows of each image (no flips, no gains)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in paths:
        try:
            img = load_image(p)
        except ImageReadError as exc:
            log.warning("skipping %s", first_line(exc, limit=500))
            continue
        h, w = img.shape[-2:]
        if min(h, w) < resolution:
            continue
        for _ in range(per_image):
            y, x = rng.integers(0, h - resolution + 1), rng.integers(0, w - resolution + 1)
            out.append(img[:, y:y + resolution, x:x + resolution])
    if not out:
        raise DIFError(f"no image of at least {resolution} x {resolution} px")
    return torch.stack(out)


# ----------------------------------------------------------------------------- perturbations in training

def perturb_batch(x: torch.Tensor, kinds: Sequence[str], g: torch.Generator, strength: float = 1.0,
                  jpeg_gradient: str = "straight") -> tuple[torch.Tensor, Optional[str]]:
    """One perturbation drawn per batch (or none, half of the time), and its name: Gaussian noise of
    std up to 0.1, Gaussian blur (sigma up to 1.5), JPEG of quality 50-95 (the real codec; its
    gradient straight through or that of ``simulated_jpeg``, see ``jpeg_through``). ``strength``
    in [0, 1] scales each range from its mildest end (std 0, sigma 0.1, quality 95): the curriculum."""
    if not kinds or torch.rand(1, generator=g) < 0.5:
        return x, None
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
    # at strength 1 these are the draws of earlier versions, number for number
    if kind == "noise":
        std = 0.1 * strength * float(torch.rand(1, generator=g))
        return x + std * torch.randn(x.shape, generator=g).to(x.device), kind
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = 0.1 + 1.4 * strength * float(torch.rand(1, generator=g))
        return gaussian_blur(x, [5, 5], [sigma, sigma]), kind
    quality = int(torch.randint(int(round(95 - 45 * strength)), 96, (1,), generator=g))
    return jpeg_through(x, quality, jpeg_gradient), kind


class Curriculum:
    """Strength of the training perturbations: with ``steps`` > 0 it starts at 0 and rises by
    1 / ``steps`` after each perturbed batch that still decodes with bit accuracy >= ``hold``
    (it waits while the pair catches up); with ``steps`` = 0 it is 1 from the start."""

    def __init__(self, steps: int, hold: float) -> None:
        self.steps, self.hold = steps, hold
        self.strength = 0.0 if steps > 0 else 1.0
        self.full_at: Optional[int] = None if steps > 0 else 0

    def observe(self, step: int, perturbed: bool, batch_bit_accuracy: float) -> None:
        if self.strength < 1 and perturbed and batch_bit_accuracy >= self.hold:
            self.strength = min(1.0, self.strength + 1 / self.steps)
            if self.strength >= 1:
                self.full_at = step


# ----------------------------------------------------------------------------- quality measures

def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image PSNR in dB of images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per image SSIM (Wang et al. 2004: Gaussian window 11 / 1.5, C1 = 0.01^2, C2 = 0.03^2, mean
    over channels and the valid positions)."""
    x = torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2
    g1 = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g1 = g1 / g1.sum()
    k = (g1[:, None] * g1[None, :]).expand(a.shape[1], 1, window, window).contiguous()
    win = min(window, a.shape[-1], a.shape[-2])
    if win < window:
        k = k[..., :win, :win] / k[..., :win, :win].sum(dim=(-1, -2), keepdim=True)
    conv = lambda t: F.conv2d(t, k, groups=a.shape[1])  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    saa, sbb, sab = conv(a * a) - mu_a ** 2, conv(b * b) - mu_b ** 2, conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return m.flatten(1).mean(1)


@torch.no_grad()
def measure(encoder: FingerprintEncoder, decoder: FingerprintDecoder, images: torch.Tensor, seed: int = 0,
            batch: int = 256, perturb: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
            device: torch.device = torch.device("cpu")) -> dict:
    """Bit accuracy (mean and the share of images decoded perfectly), PSNR and SSIM of fingerprinted
    against clean images, with fresh seeded random bits; ``perturb`` (one image at a time) is
    applied to the 8-bit quantised fingerprinted images before decoding."""
    encoder.eval()
    decoder.eval()
    g = torch.Generator().manual_seed(seed)
    accs, ps, ss = [], [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device)
        bits = random_bits(len(x), encoder.fingerprint_length, g).to(device)
        y = (encoder(bits, x) * 255).round() / 255  # what a saved PNG holds
        ps.append(psnr(y, x).cpu())
        ss.append(ssim(y, x).cpu())
        if perturb is not None:
            y = torch.stack([perturb(img.cpu()) for img in y]).to(device)
        accs.append(torch.from_numpy(bit_accuracy(bits.cpu(), decode_bits(decoder(y)).cpu())))
    acc = torch.cat(accs)
    return {"images": len(images), "bit_accuracy": float(acc.mean()), "perfect": float((acc == 1).double().mean()),
            "psnr": float(torch.cat(ps).mean()), "ssim": float(torch.cat(ss).mean())}


# ----------------------------------------------------------------------------- training

def train_pair(paths: Sequence[Path], cfg: ArtificialConfig, device: torch.device, progress: bool = False,
               val: Optional[torch.Tensor] = None, snapshot: Optional[Callable[[dict], None]] = None,
               snapshot_every: int = 2000, workers: int = 0,
               init: Optional[tuple[FingerprintEncoder, FingerprintDecoder]] = None
               ) -> tuple[FingerprintEncoder, FingerprintDecoder, dict]:
    """Train an encoder/decoder pair (from ``init``'s weights when given: a run continued);
    ``snapshot(state)`` is called every ``snapshot_every`` steps and at the end with the models,
    the step, the history and the validation measures."""
    from tqdm.auto import tqdm

    cfg.checked()
    torch.manual_seed(cfg.seed)
    res, n = cfg.image_resolution, cfg.fingerprint_length
    encoder = FingerprintEncoder(res, n, cfg.luma).to(device)
    decoder = FingerprintDecoder(res, n).to(device)
    if init is not None:
        for mine, theirs in zip((encoder, decoder), init):
            if (theirs.resolution, theirs.fingerprint_length) != (res, n):
                raise DIFError(f"--init_from holds a {theirs.resolution} px, {theirs.fingerprint_length}-bit pair, "
                               f"not {res} px, {n} bits")
            mine.load_state_dict(theirs.state_dict())
    data = PhotoSet(paths, cfg)
    skipped = data.vet(progress)
    if not data.paths:
        raise DIFError(f"no usable training image: all {len(skipped)} were skipped (see the warnings above)"
                       if skipped else "no training images")
    if len(data) == 0:
        raise DIFError("no training images")
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=len(data) >= cfg.batch_size,
                                         generator=gen, num_workers=workers)
    opt_ = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=cfg.lr)
    # a continued pair already decodes: its image loss counts from the first step, so a changed encoder
    # (e.g. --luma) cannot buy back its bits with a visible change first
    sched = L2Schedule(cfg.l2_loss_scale, cfg.l2_loss_await, cfg.l2_loss_ramp, trigger=0 if init is not None else None)
    kinds = [k for k in cfg.perturb.split(",") if k]
    bit_gen = torch.Generator().manual_seed(cfg.seed + 1)
    pert_gen = torch.Generator().manual_seed(cfg.seed + 2)
    curriculum = Curriculum(cfg.curriculum, cfg.curriculum_hold)
    hist: dict = {"step": [], "bce": [], "mse": [], "lambda": [], "bit_accuracy": [], "strength": [], "val": []}
    t0, step, stopped = time.monotonic(), 0, "epochs"
    total = cfg.num_epochs * len(loader)
    bar = tqdm(total=total, desc="Training", disable=not progress, dynamic_ncols=True)

    def state(final: bool) -> dict:
        v = measure(encoder, decoder, val, seed=cfg.seed, device=device) if val is not None else None
        if v is not None:
            hist["val"].append({"step": step, **v})
        encoder.train()
        decoder.train()
        return {"encoder": encoder, "decoder": decoder, "step": step, "history": hist, "val": v, "final": final,
                "seconds": time.monotonic() - t0, "stopped": stopped, "l2_schedule": sched.bounds()}

    encoder.train()
    decoder.train()
    acc_sum, loss_b, loss_m, k = 0.0, 0.0, 0.0, 0
    done = False
    for epoch in range(cfg.num_epochs):
        data.set_epoch(epoch)
        for clean in loader:
            clean = clean.to(device, non_blocking=True)
            bits = random_bits(len(clean), n, bit_gen).to(device)
            fp = encoder(bits, clean)
            seen, kind = perturb_batch(fp, kinds, pert_gen, curriculum.strength, cfg.jpeg_gradient)
            logits = decoder(seen)
            bce = F.binary_cross_entropy_with_logits(logits, bits)
            mse = F.mse_loss(fp, clean)
            lam = sched(step)
            loss = cfg.BCE_loss_weight * bce + lam * mse
            if not torch.isfinite(loss):
                raise DIFError(f"the loss diverged at step {step} (lower --lr)")
            if cfg.lr_decay == "cosine":
                set_cosine_lr(opt_, cfg.lr, budget_fraction(time.monotonic() - t0, cfg.minutes, step, total))
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            opt_.step()
            acc = float(bit_accuracy(bits.cpu(), decode_bits(logits.detach()).cpu()).mean())
            sched.observe(step, acc)
            curriculum.observe(step, kind is not None, acc)
            step += 1
            acc_sum, loss_b, loss_m, k = acc_sum + acc, loss_b + bce.item(), loss_m + mse.item(), k + 1
            bar.update(1)
            if step % 100 == 0:
                hist["step"].append(step)
                hist["bce"].append(loss_b / k)
                hist["mse"].append(loss_m / k)
                hist["lambda"].append(lam)
                hist["bit_accuracy"].append(acc_sum / k)
                hist["strength"].append(curriculum.strength)
                bar.set_postfix(bits=f"{acc_sum / k:.3f}", psnr=f"{-10 * math.log10(max(loss_m / k, 1e-12)):.1f}",
                                lam=f"{lam:.2f}", strength=f"{curriculum.strength:.2f}")
                if step % 1000 == 0 or not progress:
                    log.info("step %d: bit accuracy %.4f, PSNR %.2f dB, image-loss weight %.3g, perturbation "
                             "strength %.2f", step, acc_sum / k, -10 * math.log10(max(loss_m / k, 1e-12)), lam,
                             curriculum.strength)
                acc_sum, loss_b, loss_m, k = 0.0, 0.0, 0.0, 0
            if cfg.minutes and time.monotonic() - t0 > cfg.minutes * 60:
                stopped, done = f"--minutes {cfg.minutes:g}", True
                break
            if snapshot is not None and step % snapshot_every == 0:
                snapshot(state(False))
        if done:
            break
    bar.close()
    final = state(True)
    if snapshot is not None:
        snapshot(final)
    report = {"steps": step, "seconds": final["seconds"], "stopped": stopped, "l2_schedule": sched.bounds(),
              "perturbation_strength": curriculum.strength, "full_strength_at": curriculum.full_at,
              "val": final["val"], "skipped": [[shown(p), why] for p, why in skipped]}
    encoder.eval()
    decoder.eval()
    return encoder, decoder, report
