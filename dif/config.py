"""Configuration dataclasses whose fields declare their own command-line flags and bounds.

A field's metadata (``opt(...)``) holds its help text, its flags (ours first, then the authors'
aliases), and its allowed range. ``add_config_arguments`` makes the argparse options from it and
``validate_fields`` checks any instance, whether it came from the command line or from a
``config.json`` on disk, so a value is described and checked in one place.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .atomic import write_text_atomic
from .errors import DIFError, first_line, shown
from .extractors import DEFAULT_EXTRACTOR
from .robustness import DEFAULT_AUGMENT_KINDS, parse_augment_kinds

CONFIG_NAME = "config.json"
CONFIG_VERSION = 2  # config.json files without ``config_version`` are version 1: see migrate_config
SEED_MAX = 2**32 - 1


def opt(default: Any, help: str, flags: Sequence[str] = (), low: Optional[float] = None,
        high: Optional[float] = None, low_open: bool = False, high_open: bool = False,
        choices: Optional[Sequence[str]] = None, cli: bool = True, **argparse_extra: Any):
    """A dataclass field with its CLI description and bounds (``low``/``high`` inclusive unless
    ``*_open``)."""
    meta = dict(help=help, flags=tuple(flags), low=low, high=high, low_open=low_open, high_open=high_open,
                choices=tuple(choices) if choices else None, cli=cli, argparse=argparse_extra)
    return field(default=default, metadata=meta)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range_text(m: dict) -> str:
    lo = "-inf" if m["low"] is None else _num(m["low"])
    hi = "inf" if m["high"] is None else _num(m["high"])
    return f"{'(' if m['low_open'] or m['low'] is None else '['}{lo}, {hi}{')' if m['high_open'] or m['high'] is None else ']'}"


def _flag(f: dataclasses.Field) -> str:
    return (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0]


def check_value(f: dataclasses.Field, v: Any, where: str = "") -> Any:
    """``v`` checked against the field's type and bounds; returns it (ints given for floats
    become floats). DIFError names the flag and the allowed range."""
    name = f"{where}{_flag(f) if not where else f.name}"
    kind = type(f.default)
    m = f.metadata
    if kind is bool:
        if not isinstance(v, bool):
            raise DIFError(f"{name} must be true or false, got {v!r}")
        return v
    if kind is str:
        if not isinstance(v, str):
            raise DIFError(f"{name} must be text, got {v!r}")
        if m.get("choices") and v not in m["choices"]:
            raise DIFError(f"{name} must be one of {', '.join(m['choices'])}, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise DIFError(f"{name} must be a {'whole number' if kind is int else 'number'}, got {v!r}")
    if not math.isfinite(v):
        raise DIFError(f"{name} must be finite, got {v}")
    lo, hi = m.get("low"), m.get("high")
    if (lo is not None and (v < lo or (m["low_open"] and v == lo))) or \
       (hi is not None and (v > hi or (m["high_open"] and v == hi))):
        raise DIFError(f"{name} must be in {_range_text(m)}, got {_num(v)}")
    return float(v) if kind is float else v


def validate_fields(obj: Any, where: str = "") -> Any:
    """Check every field of a config dataclass instance (types, finiteness, bounds)."""
    for f in dataclasses.fields(obj):
        if "help" in f.metadata:
            setattr(obj, f.name, check_value(f, getattr(obj, f.name), where))
    return obj


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, defaults: Any = None,
                         exclude: Sequence[str] = ()) -> None:
    """Add one option per CLI field of ``cls`` (help, flags and aliases from its metadata)."""
    defaults = defaults if defaults is not None else cls()
    for f in dataclasses.fields(cls):
        m = f.metadata
        if not m.get("cli") or f.name in exclude:
            continue
        default = getattr(defaults, f.name)
        flags = m["flags"] or (f"--{f.name.replace('_', '-')}",)
        kw: dict[str, Any] = dict(dest=f.name, default=default, help=m["help"])
        if isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw["type"] = {int: _parse_int, float: _parse_float, str: str}[type(f.default)]
            if m.get("choices"):
                kw["choices"] = list(m["choices"])
        kw.update(m.get("argparse") or {})
        if kw.get("nargs") == "?" and "const" not in kw:
            kw["const"] = default
        parser.add_argument(flags[0], **kw)
        add_hidden_aliases(parser, flags[1:], kw)


def add_hidden_aliases(parser: argparse.ArgumentParser, aliases: Sequence[str], kw: dict[str, Any]) -> None:
    """Extra spellings of an option (the authors' one-letter flags) that parse like it but are not
    listed in ``--help``: one name per idea on the page, old command lines still run."""
    for alias in aliases:
        parser.add_argument(alias, **dict(kw, default=argparse.SUPPRESS, help=argparse.SUPPRESS))


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any):
    """An instance of ``cls`` from parsed options (fields without an option keep their default)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values)


@dataclass
class DIFConfig:
    """Hyper-parameters of a DIF fingerprint. The defaults are the paper's except where docs/dif.md
    says why: ``augment`` (2 perturbed copies per image), ``loss`` (the one-sided ranking loss), and
    the extractor and tiles, chosen per data set."""

    epochs: int = opt(100, "training epochs", ("--epochs", "--e"), 1, 100_000, metavar="N")
    lr: float = opt(5e-4, "AdamW learning rate", ("--lr",), 0, 10, low_open=True)
    batch_size: int = opt(64, "residuals per U-Net training step", ("--batch", "--bs"), 2, 65_536, metavar="N")
    train_size: int = opt(512, "images per class, drawn by --seed (all if fewer)", ("--train-size", "--tr"), 1, 10**9,
                          metavar="N")
    crop: int = opt(256, "crop and tile size in pixels (a multiple of 16)", ("--crop", "--cs"), 1, 8192, metavar="PX")
    alpha: float = opt(1.0, "residuals scaled by U[A, 1] in training (1 = off)", ("--residual-scale", "--a"), 0, 1,
                       metavar="A")
    boost: bool = opt(False, "add the authors' booster loss", ("--boost", "--b"))
    seed: int = opt(0, "seed of the file draw, weights, noise and batches", ("--seed",), 0, SEED_MAX)
    checkpoint_every: int = opt(5, "save chk_<epoch>.pt every N epochs (and the last)", ("--checkpoint-every", "--f"),
                                1, 100_000, metavar="N")
    margin: float = opt(0.01, "margin of the pairwise loss", ("--margin",), 0, 10, low_open=True)
    loss: str = opt("ranking", "pairwise loss: ranking (one-sided) or paper", ("--loss",), choices=("ranking", "paper"))
    in_channels: int = opt(16, "U-Net input noise channels", cli=False, low=1, high=256)
    out_channels: int = opt(3, "U-Net output channels", cli=False, low=1, high=3)
    width: int = opt(32, "U-Net width (channels of the first level)", cli=False, low=1, high=1024)
    depth: int = opt(4, "U-Net depth (levels)", cli=False, low=1, high=8)
    noise_scale: float = opt(0.1, "fixed input: noise_scale * U[0, 1)", cli=False, low=0, high=100)
    noise_std: float = opt(0.03, "per-step input jitter N(0, noise_std)", cli=False, low=0, high=100)
    ema: float = opt(0.99, "EMA decay of the fingerprint", cli=False, low=0, high=1, high_open=True)
    centre_steps: int = opt(20, "centres = mean of the last N training correlations", cli=False, low=1, high=10**7)
    extractor: str = opt(DEFAULT_EXTRACTOR, "residual extractor spec", cli=False)
    augment: int = opt(2, "perturbed copies of each image to train on (0 = clean only, the paper)", ("--augment",),
                       0, 100, nargs="?", metavar="N")
    augment_kinds: str = opt(DEFAULT_AUGMENT_KINDS, "kinds of copies: jpeg,resize,blur,shift,rotate,noise or all",
                             ("--augment-kinds",), metavar="KINDS")
    train_precision: str = opt("fp32", "arithmetic of the U-Net's training steps", ("--train-precision",),
                               choices=("fp32", "bf16"))
    extractor_precision: str = opt("folded", "arithmetic of the residual extractor", ("--extractor-precision",),
                                   choices=("fp32", "folded"))
    reencode: str = opt("", "re-encode every image of both classes first (eval repeats it)", ("--reencode",),
                        metavar="jpeg:Q|png")
    calibrate: str = opt("none", "cv: also out-of-fold centres (trains --folds more fingerprints)", ("--calibrate",),
                         choices=("none", "cv"))
    folds: int = opt(5, "folds of --calibrate cv", ("--folds",), 2, 1000, metavar="K")
    max_shift: int = opt(8, "search range of the shift-tolerant score", ("--max-shift",), 0, 4096, metavar="PX")
    tiles: int = opt(0, "tiles per image to train on and score (0 = all, 1 = centre crop)", ("--tiles",), 0, 4096,
                     metavar="N")
    tile_grid: int = opt(16, "tile offsets are multiples of PX from the centre crop", ("--tile-grid",), 1, 4096,
                         metavar="PX")

    def validate(self) -> "DIFConfig":
        """Raise DIFError for values that cannot work (types, finiteness, ranges, the crop grid)."""
        validate_fields(self)
        parse_augment_kinds(self.augment_kinds)
        multiple = 2**self.depth
        if self.crop < multiple or self.crop % multiple:
            raise DIFError(f"crop must be a positive multiple of {multiple} (got {self.crop})")
        if self.crop < 2 * multiple:  # the deepest level would be 1 x 1: BatchNorm of one noise image is undefined
            raise DIFError(f"crop must be at least {2 * multiple} (got {self.crop}: the U-Net's deepest level would "
                           "be 1 x 1 pixel)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, folder: str | Path, method: str = "dif", extra: Optional[dict] = None) -> Path:
        """config.json: every field, the method's name, and ``extra`` records (read back by nobody
        but the user: unknown keys are ignored when loading)."""
        record = dict(asdict(self), method=method, config_version=CONFIG_VERSION, **(extra or {}))
        return write_text_atomic(Path(folder) / CONFIG_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> "DIFConfig":
        """A checked config from a dict read from disk (migrated to ``CONFIG_VERSION``, unknown keys
        ignored, wrong types refused)."""
        if not isinstance(d, dict):
            raise DIFError(f"{where}: expected a JSON object, got {type(d).__name__}")
        d = migrate_config(d, where)
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        validate_fields(cfg, where=f"{where}: ")
        return cfg

    @classmethod
    def load(cls, folder: str | Path) -> "DIFConfig":
        path = Path(folder) / CONFIG_NAME
        return cls.from_dict(read_json(path), where=shown(path))


def migrate_config(d: dict, where: str = "config") -> dict:
    """A config.json dict brought to ``CONFIG_VERSION``.

    Version 1 (no ``config_version`` key) is every config written before the version was
    recorded. Its missing keys take the values that were in force when it was written, not
    today's defaults, so that it trains and scores as it did: the centre crop alone (``tiles`` 1),
    the five copy kinds of the time, the paper's loss, the unfolded extractor. Its
    ``residual_precision`` is now ``extractor_precision``; ``ema_start`` and ``clean_first``
    shaped training only and are dropped (docs/findings.md).
    """
    version = d.get("config_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CONFIG_VERSION:
        raise DIFError(f"{where}: config_version {version!r} is not one this version reads (1 to {CONFIG_VERSION})")
    d = dict(d)
    if version == 1:
        d.setdefault("tiles", 1)
        d.setdefault("augment_kinds", "jpeg,resize,blur,shift,rotate")
        d.setdefault("loss", "paper")
        d["extractor_precision"] = d.pop("residual_precision", "fp32")
        for gone in ("ema_start", "clean_first"):
            d.pop(gone, None)
    d["config_version"] = CONFIG_VERSION
    return d


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or DIFError in one line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DIFError(f"cannot read {shown(path)}: {first_line(exc)}") from None


def config_from_authors(h: dict[str, Any], where: str = "train_hypers.pt") -> DIFConfig:
    """Map the authors' display-string hyper-parameter dict to a checked DIFConfig."""
    def get(key: str, default: Any, conv):
        v = h.get(key, default)
        try:
            if not isinstance(v, (int, float, str)):
                raise TypeError
            return conv(v)
        except (TypeError, ValueError, OverflowError):
            raise DIFError(f"{where}: '{key}' has an unusable value {v!r}") from None

    crop = h.get("Crop Size", 256)
    if isinstance(crop, (tuple, list)):  # theirs is (H, W)
        if not crop:
            raise DIFError(f"{where}: 'Crop Size' is empty")
        h = dict(h, **{"Crop Size": crop[0]})
    cfg = DIFConfig(
        epochs=get("Epochs", 100, int), lr=get("LR", 5e-4, float), batch_size=get("Batch Size", 64, int),
        train_size=get("Train Size", 512, int), crop=get("Crop Size", 256, int),
        alpha=get("Alpha", 1.0, float), boost=get("Boost", False, bool), checkpoint_every=get("Factor", 5, int),
        margin=get("Margin", 0.01, float), in_channels=get("Inp. Channel", 16, int),
        out_channels=get("Out. Channel", 3, int), width=get("Arch.", 32, int), depth=get("Depth", 4, int),
        noise_std=get("Noise STD", 0.03, float), extractor="unknown (authors' DnCNN)", tiles=1, loss="paper",
    )
    validate_fields(cfg, where=f"{where}: ")
    return cfg
