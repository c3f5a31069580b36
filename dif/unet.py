"""The U-Net that generates a DIF fingerprint from fixed noise (the paper's architecture).

Encoder: ``depth`` blocks of two 3x3 convolutions (BatchNorm, LeakyReLU) each followed by 2x2
max-pooling, widths ``width * 2**k``. Bottleneck: two convolutions and a 2x2 stride-2
ConvTranspose (+BatchNorm). Decoder: for each level, the skip connection is concatenated with the
upsampled features, two convolutions, then a ConvTranspose up (the last level has none). A 1x1
convolution with ``tanh`` gives the output image.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv_bn_act(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 convolution (with bias, as in the paper's code) + BatchNorm + LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(inplace=True),
    )


class DoubleConv(nn.Sequential):
    """Two ``conv_bn_act`` layers."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(conv_bn_act(in_ch, out_ch), conv_bn_act(out_ch, out_ch))


class UpSample(nn.Sequential):
    """2x2 stride-2 transposed convolution + BatchNorm (no activation, as in the paper's code)."""

    def __init__(self, ch: int) -> None:
        super().__init__(nn.ConvTranspose2d(ch, ch, kernel_size=2, stride=2), nn.BatchNorm2d(ch))


class UNet(nn.Module):
    """DIF fingerprint generator.

    Args:
        in_channels: channels of the noise input (16 in the paper).
        out_channels: channels of the fingerprint (3).
        width: channels of the first level (32).
        depth: number of down-sampling levels (4); inputs must be divisible by ``2**depth``.
    """

    def __init__(self, in_channels: int = 16, out_channels: int = 3, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("depth and width must be positive")
        self.depth = depth
        widths = [width * 2**k for k in range(depth)]  # 32, 64, 128, 256
        self.down = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.down.append(DoubleConv(prev, w))
            prev = w
        self.mid = nn.Sequential(DoubleConv(prev, prev), UpSample(prev))
        self.up = nn.ModuleList()
        self.up_sample = nn.ModuleList()
        for level in reversed(range(depth)):
            skip = widths[level]
            out = widths[level - 1] if level > 0 else width
            self.up.append(DoubleConv(skip + prev, out))
            if level > 0:
                self.up_sample.append(UpSample(out))
            prev = out
        self.head = nn.Sequential(nn.Conv2d(prev, out_channels, kernel_size=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.depth
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f"input height and width must be multiples of {multiple}, got {tuple(x.shape[-2:])}")
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.mid(h)
        for i, block in enumerate(self.up):
            h = block(torch.cat([skips[-(i + 1)], h], dim=1))
            if i < len(self.up_sample):
                h = self.up_sample[i](h)
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
