"""One configuration object with the paper's defaults, saved as JSON beside each checkpoint."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .denoiser import DEFAULT_EXTRACTOR
from .errors import DIFError

CONFIG_NAME = "config.json"


@dataclass
class DIFConfig:
    """Hyper-parameters of a DIF fingerprint (defaults are the paper's, except ``augment``:
    2 perturbed copies per image held the clean accuracy and kept it under JPEG, shifts and crops
    in our measurements; ``augment=0`` is the paper's exact recipe)."""

    epochs: int = 100
    lr: float = 5e-4
    batch_size: int = 64
    train_size: int = 512          # images per class, drawn reproducibly
    crop: int = 256                # square centre crop
    alpha: float = 1.0             # residuals scaled by U[alpha, 1] (1 = off)
    boost: bool = False            # the authors' booster loss on class-mean residuals
    seed: int = 0
    checkpoint_every: int = 5
    margin: float = 0.01
    in_channels: int = 16
    out_channels: int = 3
    width: int = 32
    depth: int = 4
    noise_scale: float = 0.1       # fixed input: noise_scale * U[0, 1)
    noise_std: float = 0.03        # per-step jitter N(0, noise_std)
    ema: float = 0.99
    centre_steps: int = 20         # centres = mean of the last centre_steps training correlations
    extractor: str = DEFAULT_EXTRACTOR
    augment: int = 2               # extra randomly perturbed copies of each image (0 = the paper's recipe)
    reencode: str = ""             # "jpeg:Q" or "png": applied to every image of both classes
    calibrate: str = "none"        # "cv": out-of-fold centres (calibration.json)
    folds: int = 5                 # folds for --calibrate cv
    max_shift: int = 8             # shift-tolerant score: shifts searched in [-max_shift, max_shift]

    def validate(self) -> "DIFConfig":
        """Raise DIFError for values that cannot work."""
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.lr > 0, f"learning rate must be positive (got {self.lr})"),
            (self.batch_size >= 2, f"batch size must be >= 2 (got {self.batch_size})"),
            (self.train_size >= 1, f"train size must be >= 1 (got {self.train_size})"),
            (0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1] (got {self.alpha})"),
            (self.checkpoint_every >= 1, f"checkpoint frequency must be >= 1 (got {self.checkpoint_every})"),
            (self.margin > 0, f"margin must be positive (got {self.margin})"),
            (0.0 <= self.ema < 1.0, f"ema must be in [0, 1) (got {self.ema})"),
            (self.depth >= 1 and self.width >= 1, "depth and width must be >= 1"),
            (self.augment >= 0, f"augment must be >= 0 (got {self.augment})"),
            (self.calibrate in ("none", "cv"), f"calibrate must be none or cv (got {self.calibrate})"),
            (self.folds >= 2, f"folds must be >= 2 (got {self.folds})"),
            (self.max_shift >= 0, f"max shift must be >= 0 (got {self.max_shift})"),
        ]
        multiple = 2**self.depth
        checks.append((self.crop >= multiple and self.crop % multiple == 0,
                       f"crop must be a positive multiple of {multiple} (got {self.crop})"))
        for ok, msg in checks:
            if not ok:
                raise DIFError(msg)
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, folder: str | Path) -> Path:
        return write_text_atomic(Path(folder) / CONFIG_NAME, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DIFConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def load(cls, folder: str | Path) -> "DIFConfig":
        path = Path(folder) / CONFIG_NAME
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise DIFError(f"cannot read {path}: {exc}") from None


def config_from_authors(h: dict[str, Any]) -> DIFConfig:
    """Map the authors' display-string hyper-parameter dict to a DIFConfig."""
    crop = h.get("Crop Size", 256)
    if isinstance(crop, (tuple, list)):
        crop = int(crop[0])
    return DIFConfig(
        epochs=int(h.get("Epochs", 100)), lr=float(h.get("LR", 5e-4)), batch_size=int(h.get("Batch Size", 64)),
        train_size=int(h.get("Train Size", 512)), crop=int(crop), alpha=float(h.get("Alpha", 1.0)),
        boost=bool(h.get("Boost", False)), checkpoint_every=int(h.get("Factor", 5)), margin=float(h.get("Margin", 0.01)),
        in_channels=int(h.get("Inp. Channel", 16)), out_channels=int(h.get("Out. Channel", 3)),
        width=int(h.get("Arch.", 32)), depth=int(h.get("Depth", 4)), noise_std=float(h.get("Noise STD", 0.03)),
        extractor="unknown (authors' DnCNN)",
    )
