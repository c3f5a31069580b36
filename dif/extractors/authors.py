"""The DIF authors' own DnCNN file (``dncnn/chk_2000.pt``, a whole pickled trainer), read
without running its code: the weights are found in the inert stub graph of ``safe_pickle``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import DIFError, first_line, shown
from ..safe_pickle import Stub, pickle_module, walk
from .base import ExtractorKind, register_kind, weights_identity
from .dncnn import DnCNN, DnCNNExtractor, check_layout, load_state_checked


def _state(obj: Any) -> dict:
    s = obj.__dict__.get("_state") if isinstance(obj, Stub) else None
    return s if isinstance(s, dict) else {}


def find_dncnn_state(obj: Any) -> Optional[dict[str, torch.Tensor]]:
    """The layer tensors (``dncnn.<i>.<name>``) of the first stub named DnCNN in the object graph.
    Every level is type-checked: a crafted file whose ``_modules`` is a list is simply not a DnCNN."""
    for o in walk(obj):
        if not (isinstance(o, Stub) and type(o).__name__ == "DnCNN"):
            continue
        mods = _state(o).get("_modules")
        seq = mods.get("dncnn") if isinstance(mods, dict) else None
        layers = _state(seq).get("_modules")
        if not isinstance(layers, dict):
            continue
        out = {}
        for idx, layer in layers.items():
            for group in ("_parameters", "_buffers"):
                tensors = _state(layer).get(group)
                for k, v in (tensors.items() if isinstance(tensors, dict) else ()):
                    if isinstance(v, torch.Tensor):
                        out[f"dncnn.{idx}.{k}"] = v.detach().clone()
        if out:
            return out
    return None


def load_authors_dncnn(path: str | Path) -> DnCNN:
    """Extract the DnCNN weights from the authors' ``dncnn/chk_2000.pt`` without running its code."""
    path = Path(path)
    where = shown(path)
    if not path.is_file():
        raise DIFError(f"authors' DnCNN checkpoint not found: {where}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module())
    except RecursionError:
        raise DIFError(f"cannot read {where} (nested too deeply to be a checkpoint)") from None
    except Exception as exc:
        raise DIFError(f"cannot read {where} ({first_line(exc)})") from None
    sd = find_dncnn_state(obj)
    if not sd:
        raise DIFError(f"{where} holds no DnCNN weights (expected the authors' pickled TrainerDnCNN)")
    try:
        convs = sorted((k for k in sd if k.endswith(".weight") and sd[k].dim() == 4), key=lambda k: int(k.split(".")[1]))
    except ValueError:
        raise DIFError(f"{where}: DnCNN layers are not numbered") from None
    if not convs:
        raise DIFError(f"{where}: no convolution weights found")
    first = sd[convs[0]]
    channels, layers, features = check_layout(int(first.shape[1]), len(convs), int(first.shape[0]), where)
    net = DnCNN(channels=channels, layers=layers, features=features)
    load_state_checked(net, sd, where)
    return net


def authors_paths(arg: str) -> tuple[str, str]:
    """authors:CHK_2000_PT[:MEAN_RESIDUAL_NPY] -> (chk, mean); a CHK path holding a colon stays whole."""
    chk, _, mean = arg.partition(":") if not Path(arg).is_file() else (arg, "", "")
    return chk, mean


def load_mean_residual(path: str) -> torch.Tensor:
    """The authors' ``clean_real.npy`` (H x W x 3) as a 3 x H x W tensor."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DIFError(f"cannot read mean residual {shown(path)}: {first_line(exc)}") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise DIFError(f"{shown(path)}: expected an H x W x 3 float array, got {arr.shape} {arr.dtype}")
    if not np.isfinite(arr).all():
        raise DIFError(f"{shown(path)}: mean residual holds NaN or infinite values")
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float()


def _build(arg: str, spec: str):
    chk, mean_path = authors_paths(arg)
    if not chk:
        raise DIFError("the authors' denoiser needs its file: --extractor authors:PATH/chk_2000.pt[:clean_real.npy]")
    net = load_authors_dncnn(chk)
    mean = load_mean_residual(mean_path) if mean_path else None
    return DnCNNExtractor(net, mean, spec=f"authors:{arg}")


def _identity(arg: str, spec: str) -> tuple:
    chk, mean = authors_paths(arg)
    return ("authors", weights_identity(Path(chk), chk), Path(mean).name if mean else "")


register_kind(ExtractorKind("authors", _build, _identity, "authors:CHK[:MEAN.npy]"))
