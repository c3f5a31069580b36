"""The fingerprint encoder and decoder of Yu et al. (ICCV 2021), layer for layer as in their code.

The encoder *outputs the fingerprinted image* (sigmoid), not a residual to add; the decoder maps an
image to one logit per bit (a bit is 1 where its logit > 0).

One change from their code, in the initial weights only: every convolution and linear layer starts
from He (Kaiming-normal, ReLU gain) weights and zero biases instead of PyTorch's default, which
shrinks the signal by about sqrt(3) per layer. With the default, the decoder's last features are
nearly constant (bias-dominated); the quickest way to lower the loss is then to silence them, the
ReLUs die and the bit accuracy stays at 0.5 for good: their users' most reported failure. We
measured it: after 2,000 steps of their recipe at 32 px the decoder's logits varied by 1e-8 across
images and 97% of its 512 dense units were dead; with He weights the same run leaves 0.5 within
150 steps. The layers, the weight names and the file format are theirs, so their released weights
load unchanged.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DIFError


MAX_RESOLUTION = 1024
MAX_BITS = 4096


def check_resolution(res: int, flag: str = "--image_resolution") -> int:
    """A power of two from 32 (the decoder's five stride-2 convolutions) to ``MAX_RESOLUTION``."""
    if isinstance(res, bool) or not isinstance(res, int) or res < 32 or res > MAX_RESOLUTION or res & (res - 1):
        raise DIFError(f"{flag} must be a power of 2 from 32 to {MAX_RESOLUTION}, got {res}")
    return res


def check_length(n: int, flag: str = "--fingerprint_length") -> int:
    """A fingerprint length from 1 to ``MAX_BITS`` bits."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BITS:
        raise DIFError(f"{flag} must be a whole number of bits from 1 to {MAX_BITS}, got {n}")
    return n


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, pad)


def he_init(module: nn.Module) -> nn.Module:
    """He-normal weights (ReLU gain) and zero biases for every convolution and linear layer (see the
    module docstring for why)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class FingerprintEncoder(nn.Module):
    """(image, bits) -> fingerprinted image: bits -> Linear -> 3x16x16 -> nearest up-sampling to the
    image size, concatenated with the image, then a U-Net (strides 1,2,2,2,2; x2 up-sampling + 2x2
    convolutions with skips) and a sigmoid.

    ``luma=True`` keeps only the grey part of the change, the same in R, G and B: JPEG keeps the
    luma plane at full resolution and quantises it finer, while it halves and coarsens the chroma
    planes, where an unconstrained encoder puts most of its change (about 78% of the energy of a
    64 px pair trained through JPEG), so JPEG 100 alone costs it bits."""

    def __init__(self, resolution: int = 128, fingerprint_length: int = 100, luma: bool = False) -> None:
        super().__init__()
        self.resolution = check_resolution(resolution)
        self.fingerprint_length = fingerprint_length
        self.luma = bool(luma)
        self.frame_psnr: Optional[float] = None  # set for a whole-frame pair (dif.artificial.frame)
        self.secret_dense = nn.Linear(fingerprint_length, 16 * 16 * 3)
        self.conv1 = _conv(6, 32)
        self.conv2 = _conv(32, 32, stride=2)
        self.conv3 = _conv(32, 64, stride=2)
        self.conv4 = _conv(64, 128, stride=2)
        self.conv5 = _conv(128, 256, stride=2)
        self.pad6 = nn.ZeroPad2d((0, 1, 0, 1))
        self.up6 = nn.Conv2d(256, 128, 2)
        self.conv6 = _conv(256, 128)
        self.pad7 = nn.ZeroPad2d((0, 1, 0, 1))
        self.up7 = nn.Conv2d(128, 64, 2)
        self.conv7 = _conv(128, 64)
        self.pad8 = nn.ZeroPad2d((0, 1, 0, 1))
        self.up8 = nn.Conv2d(64, 32, 2)
        self.conv8 = _conv(64, 32)
        self.pad9 = nn.ZeroPad2d((0, 1, 0, 1))
        self.up9 = nn.Conv2d(32, 32, 2)
        self.conv9 = _conv(64 + 6, 32)
        self.conv10 = _conv(32, 32)
        self.residual = nn.Conv2d(32, 3, 1)
        he_init(self)

    def forward(self, bits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        s = F.relu(self.secret_dense(bits)).view(-1, 3, 16, 16)
        s = F.interpolate(s, scale_factor=r // 16, mode="nearest")
        inputs = torch.cat([s, image], dim=1)
        c1 = F.relu(self.conv1(inputs))
        c2 = F.relu(self.conv2(c1))
        c3 = F.relu(self.conv3(c2))
        c4 = F.relu(self.conv4(c3))
        c5 = F.relu(self.conv5(c4))
        up = lambda x: F.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
        u6 = F.relu(self.up6(self.pad6(up(c5))))
        c6 = F.relu(self.conv6(torch.cat([c4, u6], 1)))
        u7 = F.relu(self.up7(self.pad7(up(c6))))
        c7 = F.relu(self.conv7(torch.cat([c3, u7], 1)))
        u8 = F.relu(self.up8(self.pad8(up(c7))))
        c8 = F.relu(self.conv8(torch.cat([c2, u8], 1)))
        u9 = F.relu(self.up9(self.pad9(up(c8))))
        c9 = F.relu(self.conv9(torch.cat([c1, u9, inputs], 1)))
        c10 = F.relu(self.conv10(c9))
        out = torch.sigmoid(self.residual(c10))
        if self.luma:  # R, G, B moved alike: Cb and Cr (whose weights sum to 0) stay those of the image
            out = (image + (out - image).mean(1, keepdim=True)).clamp(0, 1)
        return out


class FingerprintDecoder(nn.Module):
    """Image -> one logit per bit: 3x3 convolutions with strides 2,1,2,1,2,2,2 and a 2-layer head."""

    def __init__(self, resolution: int = 128, fingerprint_length: int = 100) -> None:
        super().__init__()
        self.resolution = check_resolution(resolution)
        self.fingerprint_length = fingerprint_length
        self.frame_psnr: Optional[float] = None  # set for a whole-frame pair (dif.artificial.frame)
        layers, cin = [], 3
        for cout, stride in ((32, 2), (32, 1), (64, 2), (64, 1), (64, 2), (128, 2), (128, 2)):
            layers += [_conv(cin, cout, stride=stride), nn.ReLU()]
            cin = cout
        self.decoder = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Linear((resolution // 32) ** 2 * 128, 512), nn.ReLU(),
                                   nn.Linear(512, fingerprint_length))
        he_init(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.dense(self.decoder(image).flatten(1))
