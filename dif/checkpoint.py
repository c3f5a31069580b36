"""Fingerprint checkpoints: ours and the authors' (same dict layout), saved atomically and
byte-reproducibly, loaded without executing pickled code, and checked against a schema."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import save_torch_atomic
from .config import CONFIG_NAME, DIFConfig, config_from_authors
from .errors import DIFError, first_line, shown
from .fingerprint import TrainState
from .safe_pickle import load_plain_pickle, load_weights_only

CHECKPOINT_RE = re.compile(r"^chk_(\d+)\.pt$")
AUTHORS_HYPERS = "train_hypers.pt"
MIN_FINGERPRINT, MAX_FINGERPRINT = 8, 8192


def checkpoint_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / f"chk_{epoch}.pt"


def save_checkpoint(path: str | Path, state: TrainState, extractor: str) -> Path:
    """Write ``state`` in the authors' layout (``Fingerprint`` 1x3xHxW, ``Train Real``,
    ``Train Fake``, ``Loss``) plus ``Epoch`` and ``Extractor``; tensors and plain Python values
    only, so ``torch.load(weights_only=True)`` reads it. A non-finite fingerprint is never saved."""
    if state.fingerprint is None:
        raise ValueError("nothing to save: the state has no fingerprint yet")
    if not torch.isfinite(state.fingerprint).all():
        raise DIFError("training diverged: the fingerprint holds NaN or infinite values (nothing saved; "
                       "try a smaller --lr)")
    payload = {
        "Fingerprint": state.fingerprint.detach().cpu().float().reshape(1, *state.fingerprint.shape[-3:]),
        "Train Real": [float(v) for v in state.train_real],
        "Train Fake": [float(v) for v in state.train_fake],
        "Loss": [float(v) for v in state.loss],
        "Epoch": int(state.epoch),
        "Extractor": str(extractor),
    }
    return save_torch_atomic(path, payload)


def list_checkpoints(folder: str | Path) -> dict[int, Path]:
    """{epoch: path} of every ``chk_<epoch>.pt`` in ``folder``."""
    folder = Path(folder)
    out = {}
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError as exc:
        raise DIFError(f"cannot read {shown(folder)} ({first_line(exc)})") from None
    for p in entries:
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_file():
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def _number_list(v: Any, key: str, where: str) -> list[float]:
    if isinstance(v, torch.Tensor):
        v = v.flatten().tolist()
    if not isinstance(v, (list, tuple)):
        raise DIFError(f"{where}: '{key}' is not a list of numbers")
    try:
        out = [float(x) for x in v if not isinstance(x, (str, bytes))]
    except (TypeError, ValueError):
        raise DIFError(f"{where}: '{key}' is not a list of numbers") from None
    if len(out) != len(v):
        raise DIFError(f"{where}: '{key}' is not a list of numbers")
    return out


def load_checkpoint(path: str | Path) -> tuple[TrainState, Optional[str]]:
    """Read a checkpoint (ours or the authors'); returns the state and the recorded extractor
    (None for the authors' files, which record none). Raises DIFError when it is not one."""
    path = Path(path)
    where = shown(path)
    if not path.is_file():
        raise DIFError(f"checkpoint not found: {where}")
    d = load_weights_only(path, "checkpoint")
    if not isinstance(d, dict) or not isinstance(d.get("Fingerprint"), torch.Tensor):
        raise DIFError(f"{where} is not a DIF fingerprint checkpoint (no 'Fingerprint' tensor)")
    fp = d["Fingerprint"]
    if not fp.is_floating_point():
        raise DIFError(f"{where}: the fingerprint is not a floating-point tensor")
    fp = fp.float()
    if fp.dim() == 3:
        fp = fp.unsqueeze(0)
    if fp.dim() != 4 or fp.shape[0] != 1 or fp.shape[1] not in (1, 3):
        raise DIFError(f"{where}: fingerprint has shape {tuple(d['Fingerprint'].shape)}, expected 1x3xHxW")
    if not all(MIN_FINGERPRINT <= s <= MAX_FINGERPRINT for s in fp.shape[-2:]):
        raise DIFError(f"{where}: fingerprint is {fp.shape[-1]}x{fp.shape[-2]}; sides must be in "
                       f"[{MIN_FINGERPRINT}, {MAX_FINGERPRINT}]")
    if not torch.isfinite(fp).all():
        raise DIFError(f"{where}: fingerprint holds NaN or infinite values")
    lists = {key: _number_list(d.get(key, []), key, where) for key in ("Train Real", "Train Fake", "Loss")}
    for key in ("Train Real", "Train Fake"):
        if not any(math.isfinite(v) for v in lists[key]):
            raise DIFError(f"{where}: no finite '{key}' correlations to compute the real/fake centres from")
    epoch = d.get("Epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise DIFError(f"{where}: 'Epoch' must be a whole number >= 0, got {epoch!r}")
    ext = d.get("Extractor")
    if ext is not None and not isinstance(ext, str):
        raise DIFError(f"{where}: 'Extractor' must be text, got {type(ext).__name__}")
    state = TrainState(fp, lists["Train Real"], lists["Train Fake"], lists["Loss"], epoch)
    return state, ext


def load_authors_hypers(path: str | Path) -> dict[str, Any]:
    """Read the authors' pickled hyper-parameter dict without executing arbitrary code."""
    obj = load_plain_pickle(path, "hyper-parameter dict")
    if not isinstance(obj, dict):
        raise DIFError(f"{shown(path)} does not hold a hyper-parameter dict")
    return obj


def load_config(folder: str | Path) -> Optional[DIFConfig]:
    """Our ``config.json`` if present, else the authors' ``train_hypers.pt`` mapped to a
    DIFConfig, else None."""
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_file():
        return DIFConfig.load(folder)
    if (folder / AUTHORS_HYPERS).is_file():
        return config_from_authors(load_authors_hypers(folder / AUTHORS_HYPERS), where=shown(folder / AUTHORS_HYPERS))
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


def resolve_checkpoint(folder: str | Path, epoch: Optional[int] = None) -> tuple[Path, Path]:
    """(checkpoint file, its folder) for a CHECK_DIR at ``epoch`` (default: the latest), or a
    single ``chk_<epoch>.pt`` file."""
    folder = Path(folder)
    if not folder.exists():
        raise DIFError(f"checkpoint folder not found: {shown(folder)}")
    if folder.is_file():
        return folder, folder.parent
    found = list_checkpoints(folder)
    if not found:
        raise DIFError(f"no chk_<epoch>.pt checkpoints in {shown(folder)}")
    if epoch is None:
        epoch = max(found)
    if epoch not in found:
        raise DIFError(f"no checkpoint for epoch {epoch} in {shown(folder)} (have: {', '.join(map(str, found))})")
    return found[epoch], folder


def load_fingerprint_dir(folder: str | Path, epoch: Optional[int] = None) -> LoadedFingerprint:
    """Load ``chk_<epoch>.pt`` (default: the latest) from a CHECK_DIR, with its config."""
    path, parent = resolve_checkpoint(folder, epoch)
    cfg = load_config(parent)
    state, ext = load_checkpoint(path)
    return LoadedFingerprint(path, state, ext, cfg)
