"""One allow-list unpickler for the authors' pickled files.

The authors saved whole Python objects (a trainer holding a DnCNN; a dict of hyper-parameters
holding a ``torch.device``). Loading them with plain ``pickle`` would run whatever code the file
names. Here only tensor-rebuilding functions and plain containers are resolved; ``torch.device``
becomes its string; every other class becomes an inert stub that records its state and runs
nothing.
"""
from __future__ import annotations

import importlib
import io
import pickle
import types
from typing import Any

from .errors import DIFError, first_line, shown

_REAL = {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
         ("torch._utils", "_rebuild_parameter_with_state"), ("collections", "OrderedDict")}
_BUILTINS = {"tuple", "list", "dict", "set", "frozenset", "complex"}


class Stub:
    """Stands in for every class of a foreign pickle: records constructor arguments and state."""

    def __init__(self, *args, **kwargs) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state) -> None:
        self.__dict__["_state"] = state


def _device_string(*args) -> str:
    return ":".join(str(a) for a in args)


def _safe_reconstructor(cls, base, state):
    if not (isinstance(cls, type) and issubclass(cls, Stub)):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return object.__new__(cls)


class SafeUnpickler(pickle.Unpickler):
    """Resolves tensors, plain containers and ``torch.device`` (as a string); any other global
    becomes a ``Stub`` subclass named after it (no code from the file can run), or with
    ``stubs=False`` is refused."""

    def __init__(self, *args, stubs: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._allow_stubs = stubs
        self._stubs: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL:
            return getattr(importlib.import_module(module), name)
        if (module, name) == ("torch", "device"):
            return _device_string
        if module == "builtins" and name in _BUILTINS:
            return getattr(__import__("builtins"), name)
        if (module, name) == ("copyreg", "_reconstructor"):
            return _safe_reconstructor
        key = (module, name)
        if not self._allow_stubs:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if key not in self._stubs:
            self._stubs[key] = type(name, (Stub,), {"__module__": f"stub.{module}"})
        return self._stubs[key]


def pickle_module() -> types.ModuleType:
    """A module usable as ``torch.load(..., pickle_module=...)`` that unpickles with SafeUnpickler."""
    mod = types.ModuleType("dif_safe_pickle")
    mod.Unpickler = SafeUnpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: SafeUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    return mod


def load_plain_pickle(path, what: str = "file") -> Any:
    """Unpickle a (non-zip) pickle file of plain values safely (no stubs: any class other than
    ``torch.device`` is refused); DIFError when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return SafeUnpickler(io.BytesIO(data), stubs=False).load()
    except RecursionError:
        raise DIFError(f"cannot read {path} safely (nested too deeply to be a {what})") from None
    except Exception as exc:
        raise DIFError(f"cannot read {path} safely ({first_line(exc)})") from None


def walk(obj: Any, max_nodes: int = 1_000_000):
    """Every object reachable from ``obj`` through containers and stubs, without recursion (a
    hostile file may nest lists 100,000 deep), each once, at most ``max_nodes`` of them."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if len(seen) > max_nodes:
            raise DIFError(f"the file holds more than {max_nodes} objects")
        yield o
        if isinstance(o, Stub):
            stack.extend(o.__dict__.values())
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)


def load_weights_only(path, what: str, map_location="cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors; a file holding pickled code or
    objects is called what it is instead of passing on torch's advice to retry unsafely."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # torch refused a global: never retry without the guard
            raise DIFError(f"{shown(path)} is not a safe {what}: it holds pickled objects or code, which are "
                           "never loaded") from None
        raise DIFError(f"{shown(path)} is not a readable {what} (corrupt, or not a PyTorch file)") from None
    except RecursionError:
        raise DIFError(f"{shown(path)} is not a readable {what} (nested too deeply)") from None
    except Exception as exc:  # corrupt, truncated, not a torch file
        raise DIFError(f"{shown(path)} is not a readable {what} ({first_line(exc)})") from None
