"""Small image generators that train in minutes on a CPU: the lineage experiment's family (parent,
child, sibling, stranger) and the artificial-fingerprint transfer demonstration use them.

Two architectures: ``dcgan`` (ConvTranspose up-sampling, Radford et al. 2016, the kind of
generator whose checkerboard traces DIF picks up) and ``upconv`` (nearest up-sampling followed by
3x3 convolutions: another architecture, for the "stranger"). Two ways to train either:
``gan`` (a DCGAN discriminator, the non-saturating loss) and ``ae`` (an autoencoder whose decoder is
the generator; samples decode Gaussian codes fitted to the training codes), deterministic and
stable at a few hundred steps. Images are N x 3 x S x S in [0, 1]; S a power of 2 from 8 to 128.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DIFError

log = logging.getLogger(__name__)
ARCHS = ("dcgan", "upconv")
TRAININGS = ("gan", "ae")


def generator_levels(size: int) -> int:
    """Up-samplings from 4 x 4 to ``size``; DIFError unless ``size`` is a power of 2 in [8, 128]
    (callers check it before minutes of preparation)."""
    if size < 8 or size > 128 or size & (size - 1):
        raise DIFError(f"generator size must be a power of 2 in [8, 128], got {size}")
    return int(math.log2(size)) - 2  # 4 x 4 -> size


class Generator(nn.Module):
    """z (N x nz) -> image (N x 3 x size x size) in [0, 1]."""

    def __init__(self, arch: str = "dcgan", size: int = 32, nz: int = 64, width: int = 32) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise DIFError(f"unknown generator architecture {arch!r} (known: {', '.join(ARCHS)})")
        self.arch, self.size, self.nz = arch, size, nz
        n = generator_levels(size)
        ch = [width * 2 ** (n - 1 - i) for i in range(n)] + [3]  # e.g. 128, 64, 32 -> 3
        self.stem = nn.Sequential(nn.Linear(nz, ch[0] * 16), nn.Unflatten(1, (ch[0], 4, 4)), nn.BatchNorm2d(ch[0]),
                                  nn.ReLU(True))
        blocks = []
        for i in range(n):
            last = i == n - 1
            if arch == "dcgan":
                blocks.append(nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, 1, bias=last))
            else:
                blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch[i], ch[i + 1], 3, 1, 1, bias=last)]
            if not last:
                blocks += [nn.BatchNorm2d(ch[i + 1]), nn.ReLU(True)]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(self.stem(z)))


class Encoder(nn.Module):
    """Image -> code (for ``ae`` training) or -> one logit (the GAN discriminator, ``nz = 1``)."""

    def __init__(self, size: int = 32, nz: int = 64, width: int = 32) -> None:
        super().__init__()
        n = generator_levels(size)
        layers, cin = [], 3
        for i in range(n):
            cout = width * 2 ** i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            cin = cout
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * 16, nz))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)


@dataclass
class GeneratorConfig:
    arch: str = "dcgan"
    training: str = "gan"
    size: int = 32
    nz: int = 64
    width: int = 32
    steps: int = 2000
    batch: int = 64
    lr: float = 2e-4
    seed: int = 0


@dataclass
class TrainedGenerator:
    generator: Generator
    config: GeneratorConfig
    code_mean: torch.Tensor   # ``ae``: the Gaussian the samples' codes are drawn from; ``gan``: N(0, I)
    code_chol: torch.Tensor
    steps: int
    seconds: float
    history: dict

    @torch.no_grad()
    def sample(self, n: int, seed: int, batch: int = 256) -> torch.Tensor:
        """``n`` images (CPU), seeded."""
        g = torch.Generator().manual_seed(seed)
        self.generator.eval()
        dev = next(self.generator.parameters()).device
        out = []
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), self.config.nz, generator=g)
            z = self.code_mean + z @ self.code_chol.T
            out.append(self.generator(z.to(dev)).cpu())
        return torch.cat(out)

    def state(self) -> dict:
        return {"config": asdict(self.config), "generator": {k: v.cpu() for k, v in self.generator.state_dict().items()},
                "code_mean": self.code_mean, "code_chol": self.code_chol, "steps": self.steps}


def train_generator(images: torch.Tensor, cfg: GeneratorConfig, device: torch.device = torch.device("cpu"),
                    init: Optional[TrainedGenerator] = None, progress: bool = False,
                    desc: str = "Generator") -> TrainedGenerator:
    """Train (or, from ``init``, fine-tune: the same networks continue on ``images``) a generator for
    ``cfg.steps`` steps on ``images`` (N x 3 x S x S in [0, 1], CPU)."""
    from tqdm.auto import tqdm

    if cfg.arch not in ARCHS or cfg.training not in TRAININGS:
        raise DIFError(f"unknown generator {cfg.arch}/{cfg.training}")
    if images.shape[-1] != cfg.size or images.shape[-2] != cfg.size:
        raise DIFError(f"images of {tuple(images.shape[-2:])} px for a {cfg.size} px generator")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    if init is not None:
        G = Generator(cfg.arch, cfg.size, cfg.nz, cfg.width)
        G.load_state_dict(init.generator.state_dict())
        second = init.__dict__.get("_second")
    else:
        G, second = Generator(cfg.arch, cfg.size, cfg.nz, cfg.width), None
    if second is None:
        second = Encoder(cfg.size, cfg.nz if cfg.training == "ae" else 1, cfg.width)
    else:
        s = Encoder(cfg.size, cfg.nz if cfg.training == "ae" else 1, cfg.width)
        s.load_state_dict(second.state_dict())
        second = s
    G, second = G.to(device).train(), second.to(device).train()
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
    opt_s = torch.optim.Adam(second.parameters(), lr=cfg.lr, betas=betas)
    hist: dict = {"step": [], "loss": []}
    t0 = time.monotonic()
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    run = 0.0
    for step in bar:
        idx = torch.randint(len(images), (cfg.batch,), generator=g)
        x = images[idx].to(device)
        if cfg.training == "ae":
            rec = G(second(x))
            loss = F.mse_loss(rec, x)
            opt_g.zero_grad(set_to_none=True)
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            opt_s.step()
        else:
            z = torch.randn(cfg.batch, cfg.nz, generator=g).to(device)
            fake = G(z)
            d_loss = F.softplus(-second(x)).mean() + F.softplus(second(fake.detach())).mean()
            opt_s.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_s.step()
            loss = F.softplus(-second(fake)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
        if not torch.isfinite(loss):
            raise DIFError(f"generator training diverged at step {step}")
        run += float(loss.detach())
        if (step + 1) % 50 == 0:
            hist["step"].append(step + 1)
            hist["loss"].append(run / 50)
            bar.set_postfix(loss=f"{run / 50:.4f}")
            run = 0.0
    G.eval()
    second.eval()
    if cfg.training == "ae":
        with torch.no_grad():
            codes = torch.cat([second(images[i:i + 256].to(device)).cpu() for i in range(0, len(images), 256)]).double()
        mean = codes.mean(0)
        cov = torch.cov(codes.T) + 1e-4 * torch.eye(cfg.nz, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)
        mean, chol = mean.float(), chol.float()
    else:
        mean, chol = torch.zeros(cfg.nz), torch.eye(cfg.nz)
    out = TrainedGenerator(G, cfg, mean, chol, cfg.steps + (init.steps if init else 0), time.monotonic() - t0, hist)
    out.__dict__["_second"] = second  # fine-tuning continues with the same discriminator / encoder
    return out


def random_crops(images: list[torch.Tensor], size: int, n: int, seed: int) -> torch.Tensor:
    """``n`` seeded random ``size`` x ``size`` crops (with left-right flips) of decoded images."""
    g = torch.Generator().manual_seed(seed)
    usable = [im for im in images if min(im.shape[-2:]) >= size]
    if not usable:
        raise DIFError(f"no image of at least {size} px")
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        im = usable[int(torch.randint(len(usable), (1,), generator=g))]
        h, w = im.shape[-2:]
        y, x = int(torch.randint(h - size + 1, (1,), generator=g)), int(torch.randint(w - size + 1, (1,), generator=g))
        c = im[:, y:y + size, x:x + size]
        out[i] = c.flip(-1) if torch.rand(1, generator=g) < 0.5 else c
    return out


# ----------------------------------------------------------------------------- image-to-image

class ImageAutoencoder(nn.Module):
    """A fully convolutional image-to-image generator: ``ups`` stride-2 convolutions down, as many
    ConvTranspose up-samplings back (kernel 3, stride 2: the kind of decoder whose checkerboard
    traces DIF picks up; each up-sampling doubles the trace's period).
    Being fully convolutional it is trained on small crops and applied to whole photos of any size
    (a multiple of 2**ups keeps every pixel; others are cropped to one)."""

    def __init__(self, width: int = 32, ups: int = 2) -> None:
        super().__init__()
        if not 1 <= ups <= 4:
            raise DIFError(f"the autoencoder's up-samplings must be 1-4, got {ups}")
        w = width
        self.ups = ups
        down: list[nn.Module] = [nn.Conv2d(3, w, 3, 1, 1), nn.ReLU(True)]
        for i in range(ups):
            down += [nn.Conv2d(w if i == 0 else 2 * w, 2 * w, 4, 2, 1), nn.ReLU(True)]
        self.encode = nn.Sequential(*down)
        # kernel 3, stride 2: the uneven overlap that leaves checkerboard traces (Odena et al., 2016)
        up: list[nn.Module] = []
        for i in range(ups):
            up += [nn.ConvTranspose2d(2 * w, w if i == ups - 1 else 2 * w, 3, 2, 1, output_padding=1), nn.ReLU(True)]
        self.decode = nn.Sequential(*up, nn.Conv2d(w, 3, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 2 ** self.ups
        h, w = x.shape[-2] // m * m, x.shape[-1] // m * m
        x = x[..., :h, :w]
        return torch.sigmoid(self.decode(self.encode(x * 2 - 1)))


def train_image_autoencoder(crops: torch.Tensor, steps: int, batch: int = 16, lr: float = 1e-3, width: int = 32,
                            seed: int = 0, progress: bool = False, ups: int = 2) -> tuple[ImageAutoencoder, list[float]]:
    """Train an ``ImageAutoencoder`` to reproduce ``crops`` (N x 3 x S x S in [0, 1], CPU) with an L1
    loss, for a fixed number of steps (not a time budget, so that the same seed gives the same
    weights). Returns the network (eval mode) and the loss of every step."""
    from tqdm.auto import tqdm

    if crops.dim() != 4 or crops.shape[1] != 3 or len(crops) == 0:
        raise DIFError("the autoencoder needs N x 3 x S x S crops")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ImageAutoencoder(width, ups)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    for step in tqdm(range(steps), desc="Autoencoder", disable=not progress, leave=False, dynamic_ncols=True):
        x = crops[torch.randint(len(crops), (batch,), generator=g)]
        loss = F.l1_loss(net(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise DIFError(f"autoencoder training diverged at step {step}")
        losses.append(float(loss.detach()))
    return net.eval(), losses
