"""The method registry: a name -> the module holding its ``Method`` class.

Adding a method means one module with a ``Method`` subclass named in ``METHOD_CLASS`` and one
line here. Modules are imported when first asked for, so a script pays only for what it uses.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

from ..errors import DIFError, shown
from .base import Method

_REGISTRY: dict[str, str] = {
    "dif": "dif.methods.dif",
    "dif-ensemble": "dif.methods.dif_ensemble",
    "deepfeaturex": "dif.deepfeaturex.method",
    "artificial": "dif.artificial.method",
}
CONFIG_NAME = "config.json"
DEFAULT_METHOD = "dif"  # folders without a method record: ours before the registry, and the authors'


def method_names() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str) -> type[Method]:
    """The Method class registered under ``name``."""
    if name not in _REGISTRY:
        raise DIFError(f"unknown method {name!r} (known: {', '.join(_REGISTRY)})")
    cls = importlib.import_module(_REGISTRY[name]).METHOD_CLASS
    assert issubclass(cls, Method) and cls.name == name
    return cls


def method_of(folder: str | Path) -> str:
    """The method a checkpoint folder (or a checkpoint file inside one) was made with."""
    from ..config import read_json

    folder = Path(folder)
    cfg = (folder.parent if folder.is_file() else folder) / CONFIG_NAME
    if not cfg.is_file():
        return DEFAULT_METHOD
    d = read_json(cfg)
    if not isinstance(d, dict):
        raise DIFError(f"{shown(cfg)}: expected a JSON object, got {type(d).__name__}")
    name = d.get("method", DEFAULT_METHOD)
    if not isinstance(name, str) or name not in _REGISTRY:
        raise DIFError(f"{shown(cfg)} names an unknown method {name!r} (known: {', '.join(_REGISTRY)})")
    return name


def load_method(folder: str | Path, epoch: Optional[int] = None, options=None, device="cpu") -> Method:
    """The trained method in a checkpoint folder, whichever it is."""
    from ..errors import first_line

    folder = Path(folder)
    try:
        if not folder.exists():
            raise DIFError(f"checkpoint folder not found: {shown(folder)}")
        return get_method(method_of(folder)).load(folder, epoch=epoch, options=options, device=device)
    except OSError as exc:  # a folder that cannot be searched, a file that cannot be read: any method's loader
        raise DIFError(f"cannot read the checkpoint {shown(folder)} ({first_line(exc)})") from None


def is_check_dir(folder: Path) -> bool:
    """True when ``folder`` holds a trained method of any registered kind (a ``config.json``
    naming one, or DIF checkpoints)."""
    from ..checkpoint import list_checkpoints
    from ..errors import first_line

    try:
        if not folder.is_dir():
            return False
        if (folder / CONFIG_NAME).is_file():
            return True
        return bool(list_checkpoints(folder))
    except OSError as exc:
        raise DIFError(f"cannot read {shown(folder)} ({first_line(exc)})") from None


__all__ = ["Method", "get_method", "load_method", "method_names", "method_of", "is_check_dir"]
