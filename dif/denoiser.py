"""Residual extractors: turn images (N x 3 x H x W in [0, 1]) into noise residuals.

Every extractor is a frozen ``nn.Module`` with a ``spec`` string that names it, so that a
fingerprint can record which extractor made it. ``build_extractor(spec)`` makes one from:

- ``highpass`` or ``highpass:SIGMA``: image minus its Gaussian blur (sigma in pixels, default 1).
- ``wavelet`` or ``wavelet:SIGMA``: image minus its wavelet-denoised version (db8, 4 levels,
  BayesShrink soft thresholds for a noise level of SIGMA/255, default 5), the classical PRNU
  residual, in the shift-invariant (stationary) transform; ``wavelet-dwt``: the same with the
  decimated transform. Uses PyWavelets.
- ``dncnn``: the project's own DnCNN (the authors' layout), trained by ``python -m dif.dncnn_train``
  and shipped in ``checks/denoiser/dncnn17.pt`` with its mean residual and model card.
- ``dncnn:PATH``: a DnCNN (the authors' layout) with weights from PATH (see ``save_dncnn``).
- ``authors:CHK[:MEAN.npy]``: the authors' own ``dncnn/chk_2000.pt`` (read without running its
  pickled code) and optionally their ``clean_real.npy`` mean residual.
"""
from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .errors import DIFError

DEFAULT_EXTRACTOR = "dncnn"
DNCNN_PAD = 10  # the authors' zero padding around the image before denoising
SHIPPED_DNCNN = Path(__file__).resolve().parent.parent / "checks" / "denoiser" / "dncnn17.pt"


class ResidualExtractor(nn.Module):
    """Base class: a frozen module mapping images to residuals of the same shape."""

    spec: str = "abstract"

    def freeze(self) -> "ResidualExtractor":
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ResidualExtractor":  # always frozen
        return super().train(False)


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
        self.freeze()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = DNCNN_PAD
        xp = F.pad(x, (p, p, p, p)).contiguous(memory_format=torch.channels_last)
        res = self.net(xp)[..., p:-p, p:-p].contiguous()
        m = self.mean_residual
        if m is not None and m.shape[-2:] == res.shape[-2:]:
            res = res - m
        return res


def gaussian_kernel1d(sigma: float, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel of radius ceil(3 sigma)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, per channel."""
    k = gaussian_kernel1d(sigma, x.device).to(x.dtype)
    c = x.shape[1]
    r = (k.numel() - 1) // 2
    kx = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), ky, groups=c)


class HighPassExtractor(ResidualExtractor):
    """Residual = image - GaussianBlur(image, sigma): a plain high-pass filter."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if not sigma > 0:
            raise DIFError(f"highpass sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.spec = f"highpass:{self.sigma:g}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - gaussian_blur(x, self.sigma)


def bayes_shrink(coeffs: np.ndarray, sigma: float) -> np.ndarray:
    """Soft-threshold one wavelet detail subband with the BayesShrink threshold sigma^2/sigma_x."""
    var_x = max(float(np.mean(coeffs * coeffs)) - sigma * sigma, 0.0)
    thr = float(np.abs(coeffs).max()) if var_x == 0.0 else sigma * sigma / math.sqrt(var_x)
    return np.sign(coeffs) * np.maximum(np.abs(coeffs) - thr, 0.0)


def wavelet_denoise(channel: np.ndarray, sigma: float, wavelet: str = "db8", levels: int = 4) -> np.ndarray:
    """BayesShrink wavelet denoising of one H x W channel (approximation band kept)."""
    import pywt

    levels = max(1, min(levels, pywt.dwtn_max_level(channel.shape, wavelet)))
    coeffs = pywt.wavedec2(channel, wavelet, mode="symmetric", level=levels)
    out = [coeffs[0]] + [tuple(bayes_shrink(d, sigma) for d in detail) for detail in coeffs[1:]]
    rec = pywt.waverec2(out, wavelet, mode="symmetric")
    return rec[: channel.shape[0], : channel.shape[1]]


def swt_denoise(channel: np.ndarray, sigma: float, wavelet: str = "db8", levels: int = 4) -> np.ndarray:
    """BayesShrink denoising in the stationary (undecimated) wavelet transform: unlike the
    decimated transform, shifting the image shifts the result (no dependence on the phase of a
    2**levels grid). The channel is padded symmetrically to a multiple of 2**levels."""
    import pywt

    h, w = channel.shape
    m = 2**levels
    ph, pw = (-h) % m, (-w) % m
    x = np.pad(channel, ((0, ph), (0, pw)), mode="symmetric") if (ph or pw) else channel
    coeffs = pywt.swt2(x, wavelet, level=levels, trim_approx=True, norm=True)
    out = [coeffs[0]] + [tuple(bayes_shrink(d, sigma) for d in detail) for detail in coeffs[1:]]
    return pywt.iswt2(out, wavelet, norm=True)[:h, :w]


class WaveletExtractor(ResidualExtractor):
    """Residual = image - wavelet-denoised image (db8, 4 levels, BayesShrink, noise sigma/255).

    ``stationary=True`` (``wavelet``) uses the undecimated transform, so the residual of a
    shifted image is the shifted residual; ``stationary=False`` (``wavelet-dwt``) is the
    classical decimated version, whose residual changes with the image's phase on a 16-pixel
    grid (a 1-pixel shift leaves only ~0.45 correlation between the two residuals)."""

    def __init__(self, sigma: float = 5.0, wavelet: str = "db8", levels: int = 4, stationary: bool = True) -> None:
        super().__init__()
        try:
            import pywt  # noqa: F401  (fail early with a clear message)
        except ImportError:  # pragma: no cover - PyWavelets is in requirements.txt
            raise DIFError("the wavelet denoiser needs PyWavelets: pip install PyWavelets") from None
        if not sigma > 0:
            raise DIFError(f"wavelet sigma must be positive, got {sigma}")
        self.sigma, self.wavelet, self.levels, self.stationary = float(sigma), wavelet, int(levels), stationary
        self.spec = f"{'wavelet' if stationary else 'wavelet-dwt'}:{self.sigma:g}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().double().numpy()
        out = np.empty_like(arr)
        s = self.sigma / 255.0
        denoise = swt_denoise if self.stationary else wavelet_denoise
        for i in range(arr.shape[0]):
            for c in range(arr.shape[1]):
                out[i, c] = arr[i, c] - denoise(arr[i, c], s, self.wavelet, self.levels)
        return torch.from_numpy(out).to(x.device, x.dtype)


# ----------------------------------------------------------------------------- weights I/O

def save_dncnn(path: str | Path, net: DnCNN, mean_residual: Optional[torch.Tensor] = None, meta: Optional[dict] = None) -> None:
    """Save DnCNN weights (+ optional mean residual) as a plain dict loadable with weights_only=True."""
    from .atomic import write_atomic

    payload = {
        "format": "dif-dncnn-v1",
        "layers": net.layers,
        "features": net.features,
        "channels": net.channels,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "mean_residual": None if mean_residual is None else mean_residual.detach().cpu().float(),
        "meta": dict(meta or {}),
    }
    write_atomic(path, lambda p: torch.save(payload, p))


def load_dncnn(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DnCNN, Optional[torch.Tensor], dict]:
    """Load weights written by ``save_dncnn``; raises DIFError on a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"denoiser weights not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with code in it
        raise DIFError(f"cannot read denoiser weights {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != "dif-dncnn-v1":
        raise DIFError(f"{path} is not a DIF DnCNN weights file")
    net = DnCNN(int(payload["channels"]), int(payload["layers"]), int(payload["features"]))
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise DIFError(f"{path}: weights do not fit a DnCNN: {str(exc).splitlines()[0]}") from None
    return net, payload.get("mean_residual"), dict(payload.get("meta") or {})


# ----------------------------------------------------------------------------- the authors' file

class _Stub:
    """Stands in for every class of a foreign pickle: records constructor arguments and state,
    runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state) -> None:
        self.__dict__["_state"] = state


_STUBS: dict[tuple[str, str], type] = {}
_TENSOR_REBUILDERS = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                      ("torch._utils", "_rebuild_parameter_with_state"), ("collections", "OrderedDict")}


def _safe_reconstructor(cls, base, state):
    import pickle

    if not (isinstance(cls, type) and issubclass(cls, _Stub)):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return object.__new__(cls)


def _allow_list_unpickler():
    """A pickle module whose Unpickler resolves only tensor-rebuilding functions; every other
    global becomes an inert stub class (so no code from the file can run)."""
    import importlib
    import pickle
    import types

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) in _TENSOR_REBUILDERS:
                return getattr(importlib.import_module(module), name)
            if (module, name) == ("copyreg", "_reconstructor"):
                return _safe_reconstructor
            key = (module, name)
            if key not in _STUBS:
                _STUBS[key] = type(name, (_Stub,), {"__module__": f"stub.{module}"})
            return _STUBS[key]

    mod = types.ModuleType("dif_allow_list_pickle")
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    mod.__name__ = "dif_allow_list_pickle"
    return mod


def _find_dncnn_state(obj, seen=None) -> Optional[dict]:
    """Search the stub object graph for a module named DnCNN and return its layer tensors."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return None
    seen.add(id(obj))
    if isinstance(obj, _Stub):
        state = obj.__dict__.get("_state")
        if type(obj).__name__ == "DnCNN" and isinstance(state, dict):
            seq = state.get("_modules", {}).get("dncnn")
            layers = getattr(seq, "__dict__", {}).get("_state", {}).get("_modules", {}) if seq is not None else {}
            out = {}
            for idx, layer in layers.items():
                lstate = getattr(layer, "__dict__", {}).get("_state", {})
                for group in ("_parameters", "_buffers"):
                    for k, v in (lstate.get(group) or {}).items():
                        if isinstance(v, torch.Tensor):
                            out[f"dncnn.{idx}.{k}"] = v.detach().clone()
            if out:
                return out
        children = [state] + list(obj.__dict__.get("_args", ()))
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    else:
        return None
    for child in children:
        found = _find_dncnn_state(child, seen)
        if found:
            return found
    return None


def load_authors_dncnn(path: str | Path) -> DnCNN:
    """Extract the DnCNN weights from the authors' ``dncnn/chk_2000.pt`` (a whole pickled
    trainer object) without running its code: an allow-list unpickler rebuilds tensors only
    and turns every other class into an inert stub."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"authors' DnCNN checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_allow_list_unpickler())
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DIFError(f"cannot read {path} ({msg})") from None
    sd = _find_dncnn_state(obj)
    if not sd:
        raise DIFError(f"{path} holds no DnCNN weights (expected the authors' pickled TrainerDnCNN)")
    convs = sorted((k for k in sd if k.endswith(".weight") and sd[k].dim() == 4), key=lambda k: int(k.split(".")[1]))
    if not convs:
        raise DIFError(f"{path}: no convolution weights found")
    first = sd[convs[0]]
    net = DnCNN(channels=first.shape[1], layers=len(convs), features=first.shape[0])
    try:
        net.load_state_dict(sd)
    except RuntimeError as exc:
        raise DIFError(f"{path}: weights do not fit a DnCNN: {str(exc).splitlines()[0]}") from None
    return net


_FILTER_SIGMA = {"highpass": 1.0, "wavelet": 5.0, "wavelet-dwt": 5.0}  # default sigma of each filter


def _parse_spec(spec: Optional[str]) -> tuple[str, str, str]:
    """``spec`` (the default when empty) -> (spec, lower-case kind, argument after the first colon)."""
    spec = (spec or DEFAULT_EXTRACTOR).strip()
    kind, _, arg = spec.partition(":")
    return spec, kind.lower(), arg


def _filter_sigma(kind: str, arg: str, spec: str) -> float:
    try:
        return float(arg) if arg else _FILTER_SIGMA[kind]
    except ValueError:
        raise DIFError(f"bad {kind} sigma in denoiser spec {spec!r}") from None


def _authors_paths(arg: str) -> tuple[str, str]:
    """authors:CHK_2000_PT[:MEAN_RESIDUAL_NPY] -> (chk, mean); a CHK path holding a colon stays whole."""
    chk, _, mean = arg.partition(":") if not Path(arg).is_file() else (arg, "", "")
    return chk, mean


def build_extractor(spec: Optional[str] = None, device: str | torch.device = "cpu") -> ResidualExtractor:
    """Make a frozen residual extractor from its spec string (see the module docstring)."""
    spec, kind, arg = _parse_spec(spec)

    if kind == "highpass":
        ext: ResidualExtractor = HighPassExtractor(_filter_sigma(kind, arg, spec))
    elif kind in ("wavelet", "wavelet-dwt"):
        ext = WaveletExtractor(_filter_sigma(kind, arg, spec), stationary=kind == "wavelet")
    elif kind == "dncnn":
        if not arg and not SHIPPED_DNCNN.is_file():
            raise DIFError(f"the shipped DnCNN weights are missing ({SHIPPED_DNCNN}); train them with "
                           "`python -m dif.dncnn_train` or choose --denoiser wavelet / dncnn:PATH")
        net, mean, _ = load_dncnn(arg or SHIPPED_DNCNN)
        ext = DnCNNExtractor(net, mean, spec=f"dncnn:{arg}" if arg else "dncnn")
    elif kind == "authors":
        chk, mean_path = _authors_paths(arg)  # mean: their clean_real.npy, H x W x 3
        if not chk:
            raise DIFError("the authors' denoiser needs its file: --denoiser authors:PATH/chk_2000.pt[:clean_real.npy]")
        net = load_authors_dncnn(chk)
        mean = None
        if mean_path:
            try:
                arr = np.load(mean_path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DIFError(f"cannot read mean residual {mean_path}: {exc}") from None
            if arr.ndim != 3 or arr.shape[2] != 3:
                raise DIFError(f"{mean_path}: expected an H x W x 3 array, got {arr.shape}")
            mean = torch.from_numpy(arr.transpose(2, 0, 1).copy()).float()
        ext = DnCNNExtractor(net, mean, spec=f"authors:{arg}")
    else:
        raise DIFError(f"unknown denoiser {spec!r}: use dncnn, dncnn:PATH, wavelet[:SIGMA], wavelet-dwt[:SIGMA], highpass[:SIGMA] or authors:CHK[:MEAN.npy]")
    return ext.to(device)


def _file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (computed once per path, size and mtime)."""
    st = path.stat()
    return _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def extractor_identity(spec: Optional[str]) -> tuple:
    """What makes two extractor specs the same residual: the kind and its sigma for the filters;
    for network weights the file's content (SHA-256) when it can be read, else the path as written.
    Reads no weights into memory beyond hashing the file."""
    spec, kind, arg = _parse_spec(spec)

    def weights(path: Path, written: str) -> str:
        return _file_digest(path) if path.is_file() else written

    if kind in _FILTER_SIGMA:
        try:
            return (kind, _filter_sigma(kind, arg, spec))
        except DIFError:
            return (kind, arg)
    if kind == "dncnn":
        return (kind, weights(Path(arg) if arg else SHIPPED_DNCNN, arg))
    if kind == "authors":
        chk, mean = _authors_paths(arg)
        return (kind, weights(Path(chk), chk), Path(mean).name if mean else "")
    return (kind, arg)


def same_extractor(a: Optional[str], b: Optional[str]) -> bool:
    """True when two specs make the same residuals (``dncnn`` and ``dncnn:PATH`` to the same file
    are the same; ``wavelet`` and ``wavelet:5`` are the same)."""
    return extractor_identity(a) == extractor_identity(b)
