"""The gray image experiment: train the U-Net to output a flat gray image; its spectrum still
shows the network's own periodic artifacts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .config import DIFConfig
from .fingerprint import fixed_noise
from .unet import UNet


@dataclass
class GrayResult:
    image: np.ndarray                      # H x W x 3, the final output
    history: dict[int, np.ndarray] = field(default_factory=dict)  # step -> H x W x 3
    loss: list[float] = field(default_factory=list)


def gray_experiment(size: tuple[int, int] = (128, 128), steps: int = 1000, lr: float = 5e-5, seed: int = 0,
                    snapshot_every: int = 100, gray: float = 0.5, cfg: Optional[DIFConfig] = None,
                    device: str | torch.device = "cpu", progress: bool = False) -> GrayResult:
    """Fit the U-Net (paper architecture, fixed jittered noise input) to a flat ``gray`` image
    with MSE and AdamW. Snapshots (every ``snapshot_every`` steps and the last) are taken as in
    the authors' code: eval-mode output for a freshly jittered input."""
    from tqdm.auto import tqdm

    cfg = cfg or DIFConfig()
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(cfg.in_channels, cfg.out_channels, cfg.width, cfg.depth)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    noise = fixed_noise(cfg, h, w, gen)
    target = torch.full((1, cfg.out_channels, h, w), gray, device=device)
    result = GrayResult(image=np.zeros((h, w, cfg.out_channels)))

    def snapshot() -> np.ndarray:
        net.eval()
        with torch.no_grad():
            x = noise + torch.randn(noise.shape, generator=gen) * cfg.noise_std
            out = net(x.to(device))[0].cpu().numpy().transpose(1, 2, 0)
        net.train()
        return out.astype(np.float32)

    bar = tqdm(range(1, steps + 1), desc="Gray image", disable=not progress, dynamic_ncols=True)
    for step in bar:
        net.train()
        x = noise + torch.randn(noise.shape, generator=gen) * cfg.noise_std
        loss = F.mse_loss(net(x.to(device)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        result.loss.append(float(loss.detach()))
        if step % snapshot_every == 0 or step == steps:
            result.history[step] = snapshot()
        bar.set_postfix_str(f"Loss {result.loss[-1]:.6f}")
    result.image = result.history[steps]
    return result
