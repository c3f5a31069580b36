"""Fingerprint checkpoints: ours and the authors' (same dict layout), saved atomically and
loaded without executing pickled code."""
from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import write_atomic
from .config import CONFIG_NAME, DIFConfig, config_from_authors
from .errors import DIFError
from .fingerprint import TrainState

CHECKPOINT_RE = re.compile(r"^chk_(\d+)\.pt$")
AUTHORS_HYPERS = "train_hypers.pt"


def checkpoint_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / f"chk_{epoch}.pt"


def save_checkpoint(path: str | Path, state: TrainState, extractor: str) -> Path:
    """Write ``state`` in the authors' layout (``Fingerprint`` 1x3xHxW, ``Train Real``,
    ``Train Fake``, ``Loss``) plus ``Epoch`` and ``Extractor``; tensors and plain Python values
    only, so ``torch.load(weights_only=True)`` reads it."""
    if state.fingerprint is None:
        raise ValueError("nothing to save: the state has no fingerprint yet")
    payload = {
        "Fingerprint": state.fingerprint.detach().cpu().float().reshape(1, *state.fingerprint.shape[-3:]),
        "Train Real": [float(v) for v in state.train_real],
        "Train Fake": [float(v) for v in state.train_fake],
        "Loss": [float(v) for v in state.loss],
        "Epoch": int(state.epoch),
        "Extractor": str(extractor),
    }
    return write_atomic(path, lambda p: torch.save(payload, p))


def list_checkpoints(folder: str | Path) -> dict[int, Path]:
    """{epoch: path} of every ``chk_<epoch>.pt`` in ``folder``."""
    folder = Path(folder)
    out = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_file():
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


def load_checkpoint(path: str | Path) -> tuple[TrainState, Optional[str]]:
    """Read a checkpoint (ours or the authors'); returns the state and the recorded extractor
    (None for the authors' files, which record none). Raises DIFError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"checkpoint not found: {path}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DIFError(f"{path} is not a readable checkpoint ({_first_line(exc)})") from None
    if not isinstance(d, dict) or not isinstance(d.get("Fingerprint"), torch.Tensor):
        raise DIFError(f"{path} is not a DIF fingerprint checkpoint (no 'Fingerprint' tensor)")
    fp = d["Fingerprint"].float()
    if fp.dim() == 3:
        fp = fp.unsqueeze(0)
    if fp.dim() != 4 or fp.shape[0] != 1 or fp.shape[1] not in (1, 3):
        raise DIFError(f"{path}: fingerprint has shape {tuple(d['Fingerprint'].shape)}, expected 1x3xHxW")
    if not torch.isfinite(fp).all():
        raise DIFError(f"{path}: fingerprint holds NaN or infinite values")
    lists = {}
    for key in ("Train Real", "Train Fake", "Loss"):
        v = d.get(key, [])
        if isinstance(v, torch.Tensor):
            v = v.flatten().tolist()
        try:
            lists[key] = [float(x) for x in v]
        except (TypeError, ValueError):
            raise DIFError(f"{path}: '{key}' is not a list of numbers") from None
    if not lists["Train Real"] or not lists["Train Fake"]:
        raise DIFError(f"{path}: no training correlations to compute the real/fake centres from")
    state = TrainState(fp, lists["Train Real"], lists["Train Fake"], lists["Loss"], int(d.get("Epoch", 0)))
    ext = d.get("Extractor")
    return state, (str(ext) if ext is not None else None)


class _HyperUnpickler(pickle.Unpickler):
    """Allow-list unpickler for the authors' ``train_hypers.pt``: plain containers and numbers,
    and ``torch.device``, which becomes its string (no other global is ever resolved)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch", "device"):
            return lambda *args: ":".join(str(a) for a in args)
        if module == "builtins" and name in {"tuple", "list", "dict", "set", "frozenset", "complex"}:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def load_authors_hypers(path: str | Path) -> dict[str, Any]:
    """Read the authors' pickled hyper-parameter dict without executing arbitrary code."""
    path = Path(path)
    try:
        data = path.read_bytes()
        obj = _HyperUnpickler(io.BytesIO(data)).load()
    except Exception as exc:
        raise DIFError(f"cannot read {path} safely ({_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise DIFError(f"{path} does not hold a hyper-parameter dict")
    return obj


def load_config(folder: str | Path) -> Optional[DIFConfig]:
    """Our ``config.json`` if present, else the authors' ``train_hypers.pt`` mapped to a
    DIFConfig, else None."""
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_file():
        return DIFConfig.load(folder)
    if (folder / AUTHORS_HYPERS).is_file():
        return config_from_authors(load_authors_hypers(folder / AUTHORS_HYPERS))
    return None


@dataclass
class LoadedFingerprint:
    """A fingerprint checkpoint with what is known about how it was made."""

    path: Path
    state: TrainState
    extractor: Optional[str]
    config: Optional[DIFConfig]

    @property
    def fingerprint(self) -> torch.Tensor:
        assert self.state.fingerprint is not None
        return self.state.fingerprint


def load_fingerprint_dir(folder: str | Path, epoch: Optional[int] = None) -> LoadedFingerprint:
    """Load ``chk_<epoch>.pt`` (default: the latest) from a CHECK_DIR."""
    folder = Path(folder)
    if not folder.exists():
        raise DIFError(f"checkpoint folder not found: {folder}")
    if folder.is_file():
        path = folder
        cfg = load_config(folder.parent)
    else:
        found = list_checkpoints(folder)
        if not found:
            raise DIFError(f"no chk_<epoch>.pt checkpoints in {folder}")
        if epoch is None:
            epoch = max(found)
        if epoch not in found:
            raise DIFError(f"no checkpoint for epoch {epoch} in {folder} (have: {', '.join(map(str, found))})")
        path = found[epoch]
        cfg = load_config(folder)
    state, ext = load_checkpoint(path)
    return LoadedFingerprint(path, state, ext, cfg)
