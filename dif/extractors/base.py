"""The extractor interface and the spec registry.

A spec string names an extractor, ``KIND`` or ``KIND:ARG`` (``wavelet:5``, ``dncnn:PATH``). Each
kind registers how to build it and what makes two specs of it the same residual, so the scripts
and the fingerprints' records never branch on the kind.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import DIFError

DEFAULT_EXTRACTOR = "dncnn"  # the fixed default; train_dif.py chooses per data set (dif.choose.TRAINING_DEFAULT)


PRECISIONS = ("fp32", "folded", "bf16")
# evaluation's default: the fastest path that left every AUC of the check in docs/speed_memory.md
# unchanged (104 fingerprint x data pairs); training residuals use it too (DIFConfig.extractor_precision)
EVAL_PRECISION = "folded"


def check_precision(precision: Optional[str]) -> str:
    """``fp32`` (the reference, and the default), ``folded`` (BatchNorm folded into the
    convolutions, still fp32: the same residual up to rounding, faster) or ``bf16`` (about 4x
    faster on a CPU with native bfloat16, but it moved AUCs by up to 0.08 on held-out images,
    docs/speed_memory.md)."""
    p = (precision or "fp32").lower()
    if p not in PRECISIONS:
        raise DIFError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return p


class ResidualExtractor(nn.Module):
    """Base class: a frozen module mapping images (N x 3 x H x W in [0, 1]) to residuals of the
    same shape. ``spec`` names it, so a fingerprint can record which extractor made it.

    ``precision`` is the arithmetic of its forward pass: ``fp32`` (the reference) unless
    ``with_precision`` chose a faster one; filters always compute in fp32 (they are cheap)."""

    spec: str = "abstract"
    precision: str = "fp32"

    def with_precision(self, precision: str) -> "ResidualExtractor":
        """This extractor computing in ``precision`` (``fp32``, ``folded`` or ``bf16``) where
        that is supported; the default keeps fp32."""
        return self

    def freeze(self) -> "ResidualExtractor":
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "ResidualExtractor":  # always frozen
        return super().train(False)


@dataclass(frozen=True)
class ExtractorKind:
    """How to build one kind of extractor from the argument after its colon, and what
    identifies its residuals (two specs with equal identities make the same residuals)."""

    name: str
    build: Callable[[str, str], ResidualExtractor]   # (arg, whole spec) -> extractor
    identity: Callable[[str, str], tuple]            # (arg, whole spec) -> hashable identity
    usage: str                                       # how to write it, for error messages


_KINDS: dict[str, ExtractorKind] = {}


def register_kind(kind: ExtractorKind) -> ExtractorKind:
    _KINDS[kind.name] = kind
    return kind


def kinds() -> list[str]:
    return list(_KINDS)


def parse_spec(spec: Optional[str]) -> tuple[str, str, str]:
    """``spec`` (the default when empty) -> (spec, lower-case kind, argument after the first colon)."""
    spec = (spec or DEFAULT_EXTRACTOR).strip()
    kind, _, arg = spec.partition(":")
    return spec, kind.lower(), arg


def _kind(spec: Optional[str]) -> tuple[ExtractorKind, str, str]:
    spec, kind, arg = parse_spec(spec)
    if kind not in _KINDS:
        raise DIFError(f"unknown denoiser {spec!r}: use " + ", ".join(k.usage for k in _KINDS.values()))
    return _KINDS[kind], arg, spec


def build_extractor(spec: Optional[str] = None, device: str | torch.device = "cpu",
                    precision: str = "fp32") -> ResidualExtractor:
    """Make a frozen residual extractor from its spec string; ``precision`` (``fp32``, ``folded`` or ``bf16``,
    see ``check_precision``) is that of its forward pass."""
    kind, arg, spec = _kind(spec)
    return kind.build(arg, spec).to(device).with_precision(check_precision(precision))


def extractor_identity(spec: Optional[str]) -> tuple:
    """What makes two extractor specs the same residual (see each kind's ``identity``); an
    unknown kind is identified by its text."""
    try:
        kind, arg, spec = _kind(spec)
    except DIFError:
        _, k, arg = parse_spec(spec)
        return (k, arg)
    return kind.identity(arg, spec)


def same_extractor(a: Optional[str], b: Optional[str]) -> bool:
    """True when two specs make the same residuals (``wavelet`` = ``wavelet:5``; two paths to
    the same weights file)."""
    return extractor_identity(a) == extractor_identity(b)


def bounded_float(text: str, what: str, spec: str, low: float, high: float, default: float) -> float:
    """A numeric spec argument in (low, high]; the default when empty. Bounds keep a typo such as
    ``highpass:1e12`` from allocating terabytes."""
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        raise DIFError(f"bad {what} in denoiser spec {spec!r}: {text!r} is not a number") from None
    if not (math.isfinite(v) and low < v <= high):
        raise DIFError(f"bad {what} in denoiser spec {spec!r}: must be in ({low:g}, {high:g}], got {text}")
    return v


def file_digest(path: Path) -> str:
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


def weights_identity(path: Path, written: str) -> str:
    """A weights file is identified by its content when it can be read, else by the path as written."""
    try:
        return file_digest(path) if path.is_file() else written
    except OSError:
        return written
