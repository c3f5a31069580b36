"""Our DnCNN (the DIF authors' layout): the network, its residual extractor, and its weights
files (a plain dict read with ``weights_only=True`` and checked against a schema)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import DIFError, first_line, shown
from ..safe_pickle import load_weights_only
from .base import ExtractorKind, ResidualExtractor, register_kind, weights_identity

DNCNN_PAD = 10  # the authors' zero padding around the image before denoising
# the weights ship inside the package (dif/weights/, model cards beside them), so they are found
# wherever pip puts it
SHIPPED_DNCNN = Path(__file__).resolve().parents[1] / "weights" / "dncnn17.pt"
# the same network fine-tuned on JPEG-compressed patches (its card: dif/weights/dncnn17_jpeg.md)
SHIPPED_DNCNN_JPEG = SHIPPED_DNCNN.with_name("dncnn17_jpeg.pt")
MAX_LAYERS, MAX_FEATURES = 200, 1024  # bounds on what a weights file may ask us to allocate


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017) in the DIF authors' layout: ``layers`` 3x3 convolutions without
    bias, ``features`` channels, BatchNorm + ReLU in the middle; the output is the residual
    (noise), not the clean image. Parameter names match the authors' ``dncnn.*`` keys."""

    def __init__(self, channels: int = 3, layers: int = 17, features: int = 64) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("DnCNN needs at least 2 layers")
        mods: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            mods += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
        mods.append(nn.Conv2d(features, channels, 3, padding=1, bias=False))
        self.dncnn = nn.Sequential(*mods)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Near-identity ("delta") start: the middle 3x3 convolutions begin as the identity plus a
        little He-normal noise, the first is He-normal, the last is scaled down by 10. A plain
        17-layer stack with He init sits on a plateau for hundreds of steps (it predicts zero:
        relative MSE 1.00 after 125 steps); this start reaches 0.17 in the same steps, which is
        what makes CPU training in about 100 minutes possible (measured, see the model card)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for i, m in enumerate(convs):
            nn.init.kaiming_normal_(m.weight)
            if 0 < i < len(convs) - 1:
                with torch.no_grad():
                    noise = m.weight.clone()
                    nn.init.dirac_(m.weight)
                    m.weight.add_(0.05 * noise)
        with torch.no_grad():
            convs[-1].weight.mul_(0.1)

    @property
    def channels(self) -> int:
        return self.dncnn[0].in_channels

    @property
    def layers(self) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in self.dncnn)

    @property
    def features(self) -> int:
        return self.dncnn[0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dncnn(x)


class DnCNNExtractor(ResidualExtractor):
    """Residual = DnCNN output on the zero-padded image (10 px), cropped back, minus the mean
    residual of clean real images when its size matches the image (as in the authors' code)."""

    def __init__(self, net: DnCNN, mean_residual: Optional[torch.Tensor] = None, spec: str = "dncnn") -> None:
        super().__init__()
        # channels-last runs the 3x3 convolutions faster on CPU (oneDNN) and on GPU (NHWC kernels)
        self.net = net.to(memory_format=torch.channels_last)
        if mean_residual is not None:
            mean_residual = mean_residual.float()
            if mean_residual.dim() == 3:
                mean_residual = mean_residual.unsqueeze(0)
        self.register_buffer("mean_residual", mean_residual, persistent=False)
        self.spec = spec
        self.fast: Optional[nn.Module] = None  # the folded network of with_precision("folded" / "bf16")
        self.freeze()

    def with_precision(self, precision: str) -> "DnCNNExtractor":
        """``folded``: a copy of the network with each BatchNorm folded into the convolution before
        it, in fp32 (the same arithmetic up to rounding, one pass over the activations fewer per
        layer); ``bf16``: the same copy with weights and activations in bfloat16 (about 4x faster
        on a CPU with AMX / AVX512-BF16, but the residual is off by about 1.5% of its norm: measured
        in docs/speed_memory.md). The unfolded fp32 network is kept as the reference."""
        if precision == "fp32":
            self.fast, self.precision = None, "fp32"
            return self
        if precision not in ("folded", "bf16"):
            raise DIFError(f"unknown precision {precision!r} (fp32, folded or bf16)")
        dev = next(self.net.parameters()).device
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.fast = fold_batchnorm(self.net.dncnn).to(dev, dtype).to(memory_format=torch.channels_last)
        self.precision = precision
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = DNCNN_PAD
        xp = F.pad(x, (p, p, p, p)).contiguous(memory_format=torch.channels_last)
        if getattr(self, "fast", None) is not None:
            dtype = next(self.fast.parameters()).dtype  # the folded copy's own: fp32 or bf16
            res = self.fast(xp.to(dtype)).float()[..., p:-p, p:-p].contiguous()
        else:
            res = self.net(xp)[..., p:-p, p:-p].contiguous()
        m = self.mean_residual
        if m is not None and m.shape[-2:] == res.shape[-2:]:
            res = res - m
        return res


def fold_batchnorm(seq: nn.Sequential) -> nn.Sequential:
    """An eval-mode copy of ``seq`` with every BatchNorm2d that follows a Conv2d folded into that
    convolution (weights and a bias), which removes a pass over the activations per layer. Every
    module is a copy: casting the result (to bfloat16) must not touch ``seq``, the reference."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    mods, out, i = list(seq), [], 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(m.eval(), mods[i + 1].eval()))
            i += 2
        else:
            out.append(copy.deepcopy(m))
            i += 1
    return nn.Sequential(*out).eval()


def check_layout(channels: Any, layers: Any, features: Any, where: str) -> tuple[int, int, int]:
    """The three sizes of a DnCNN read from a file, as ints within bounds (a crafted file must not
    make us allocate a 10^6-feature network)."""
    def as_int(v: Any, name: str, low: int, high: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise DIFError(f"{where}: '{name}' must be a whole number in [{low}, {high}], got {v!r}")
        return v
    return (as_int(channels, "channels", 1, 4), as_int(layers, "layers", 2, MAX_LAYERS),
            as_int(features, "features", 1, MAX_FEATURES))


def load_state_checked(net: nn.Module, state: Any, where: str) -> None:
    """``load_state_dict`` with one-line errors, refusing non-tensor entries and NaN/inf weights."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DIFError(f"{where}: 'state_dict' is not a dict of tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DIFError(f"{where}: weights hold NaN or infinite values ({bad[0]})")
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise DIFError(f"{where}: weights do not fit a DnCNN: {first_line(exc)}") from None


def save_dncnn(path: str | Path, net: DnCNN, mean_residual: Optional[torch.Tensor] = None, meta: Optional[dict] = None) -> None:
    """Save DnCNN weights (+ optional mean residual) as a plain dict loadable with weights_only=True;
    the same weights give the same bytes."""
    from ..atomic import save_torch_atomic

    payload = {
        "format": "dif-dncnn-v1",
        "layers": net.layers,
        "features": net.features,
        "channels": net.channels,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "mean_residual": None if mean_residual is None else mean_residual.detach().cpu().float(),
        "meta": dict(meta or {}),
    }
    save_torch_atomic(path, payload)


def load_dncnn(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DnCNN, Optional[torch.Tensor], dict]:
    """Load weights written by ``save_dncnn``; raises DIFError on a missing, foreign or crafted file."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"denoiser weights not found: {shown(path)}")
    where = shown(path)
    payload = load_weights_only(path, "denoiser weights file", map_location)
    if not isinstance(payload, dict) or payload.get("format") != "dif-dncnn-v1":
        raise DIFError(f"{where} is not a DIF DnCNN weights file")
    channels, layers, features = check_layout(payload.get("channels"), payload.get("layers"), payload.get("features"), where)
    net = DnCNN(channels, layers, features)
    load_state_checked(net, payload.get("state_dict"), where)
    mean = payload.get("mean_residual")
    if mean is not None:
        if not isinstance(mean, torch.Tensor) or mean.dim() not in (3, 4) or mean.shape[-3] != channels:
            raise DIFError(f"{where}: 'mean_residual' must be a {channels} x H x W tensor")
        if not torch.isfinite(mean).all():
            raise DIFError(f"{where}: 'mean_residual' holds NaN or infinite values")
    meta = payload.get("meta") or {}
    return net, mean, dict(meta) if isinstance(meta, dict) else {}


def _build(arg: str, spec: str) -> ResidualExtractor:
    if not arg and not SHIPPED_DNCNN.is_file():
        raise DIFError(f"the shipped DnCNN weights are missing ({SHIPPED_DNCNN}); train them with "
                       "`python -m dif.dncnn_train` or choose --extractor wavelet / dncnn:PATH")
    net, mean, _ = load_dncnn(arg or SHIPPED_DNCNN)
    return DnCNNExtractor(net, mean, spec=f"dncnn:{arg}" if arg else "dncnn")


register_kind(ExtractorKind("dncnn", _build,
                            lambda arg, spec: ("dncnn", weights_identity(Path(arg) if arg else SHIPPED_DNCNN, arg)),
                            "dncnn, dncnn:PATH"))


def _build_jpeg(arg: str, spec: str) -> ResidualExtractor:
    if arg:
        raise DIFError(f"{spec!r}: dncnn-jpeg takes no argument (for other weights: dncnn:PATH)")
    if not SHIPPED_DNCNN_JPEG.is_file():
        raise DIFError(f"the shipped JPEG-trained DnCNN is missing ({SHIPPED_DNCNN_JPEG}); make it with the "
                       "command in dif/weights/dncnn17_jpeg.md or choose --extractor dncnn")
    net, mean, _ = load_dncnn(SHIPPED_DNCNN_JPEG)
    return DnCNNExtractor(net, mean, spec="dncnn-jpeg")


register_kind(ExtractorKind("dncnn-jpeg", _build_jpeg,
                            lambda arg, spec: ("dncnn", weights_identity(SHIPPED_DNCNN_JPEG, "dncnn-jpeg")),
                            "dncnn-jpeg"))
