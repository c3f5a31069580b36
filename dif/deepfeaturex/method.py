"""DeepFeatureX as a registered method: a complete-model folder scores images with
P(generated) = 1 - P(real)."""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from ..atomic import save_torch_atomic, write_text_atomic
from ..config import read_json, validate_fields
from ..errors import DIFError, shown
from ..methods.base import Method
from ..safe_pickle import load_weights_only
from .data import (Item, base_model_set, load_resized, normalise, real_index, resize_square, stratified_split,
                   subset)
from .models import CompleteModel, FusionHead, build_backbone, headless
from .train import DFXConfig, train_base, train_complete

MODEL_FILE = "model.pt"
FORMAT = "dif-deepfeaturex-v1"
_OWNED = re.compile(r"^(config\.json|model\.pt|history\.json)$")


MAX_CLASSES = 64  # one backbone each: a file claiming more is refused before anything is built

class DeepFeatureXMethod(Method):
    """Base models (one per class) + fusion head; see ``dif.deepfeaturex``."""

    name = "deepfeaturex"
    score_label = "p_fake"

    def __init__(self, config: DFXConfig, classes: Sequence[str] = ("0_real", "1_fake")) -> None:
        self.config = config
        self.classes = list(classes)
        self.model: Optional[CompleteModel] = None
        self.path: Optional[Path] = None
        self.history: dict = {}
        self.device = torch.device("cpu")

    # ---------------------------------------------------------------- building and files
    @classmethod
    def build(cls, config: DFXConfig) -> "DeepFeatureXMethod":
        return cls(validate_fields(config))

    @property
    def real(self) -> int:
        return real_index(self.classes)

    def fit(self, paths: Sequence[Path], labels: Sequence[int], *, device: torch.device,
            workdir: Optional[Path] = None, progress: bool = False, workers: Optional[int] = None) -> dict:
        """The whole recipe on labelled files (0 real, 1 generated: two classes): half of each
        folder (drawn per class, seeded) trains the base models on their unbalanced sets, the
        other half the complete model."""
        cfg = self.config
        self.device = torch.device(device)
        items = [Item(Path(p), int(y), self.classes[int(y)]) for p, y in zip(paths, labels)]
        items = stratified_split(items, (0.5, 0.5), ("base", "complete"), cfg.seed)
        return self.fit_items(items, progress=progress, workers=workers)

    def fit_items(self, items: Sequence[Item], progress: bool = False, workers: Optional[int] = None) -> dict:
        """Base models on the ``base`` split, the complete model on the ``complete`` split."""
        cfg, device = self.config, self.device
        side = cfg.input_side
        usable = [it for it in items if it.split in ("base", "complete")]
        imgs, kept, skipped = load_resized([it.path for it in usable], cfg.image_size, cfg.crop, workers=workers,
                                           progress=progress, desc="Decoding")
        row = {usable[i].path: j for j, i in enumerate(kept)}  # image -> its row in ``imgs``
        bases, report = [], {"skipped": len(skipped), "base": {}, "side": side}
        base_items = [it for it in usable if it.split == "base" and it.path in row]
        for k, c in enumerate(self.classes):
            chosen = base_model_set(base_items, k, cfg.perc_to_take, cfg.seed)
            model, hist = train_base(subset(imgs, [row[it.path] for it in chosen]), [it.label for it in chosen], cfg,
                                     device, progress, desc=f"Base model {c}")
            bases.append(model)
            report["base"][c] = {"images": len(chosen), "main": sum(it.label for it in chosen), **hist}
        comp = [it for it in usable if it.split == "complete" and it.path in row]
        if len({it.label for it in comp}) < 2:
            raise DIFError("the complete model's split holds fewer than two classes")
        self.model, hist = train_complete(bases, subset(imgs, [row[it.path] for it in comp]), [it.label for it in comp],
                                          len(self.classes), cfg, device, progress)
        report["complete"] = {"images": len(comp), **hist}
        self.history = report
        return report

    def save(self, folder: Path) -> None:
        if self.model is None:
            raise ValueError("nothing to save: fit or load first")
        folder = Path(folder)
        payload = {"format": FORMAT, "classes": self.classes, "backbone": self.config.backbone,
                   "bases": [{k: v.detach().cpu() for k, v in b.state_dict().items()} for b in self.model.bases],
                   "head": {k: v.detach().cpu() for k, v in self.model.head.state_dict().items()}}
        save_torch_atomic(folder / MODEL_FILE, payload)
        cfg = dict(asdict(self.config), method=self.name, classes=self.classes, real_class=self.classes[self.real])
        write_text_atomic(folder / "config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        if self.history:
            write_text_atomic(folder / "history.json", json.dumps(self.history, indent=1) + "\n")

    @classmethod
    def owns_file(cls, name: str) -> bool:
        return bool(_OWNED.match(name))

    @classmethod
    def load(cls, folder: Path, epoch: Optional[int] = None, options: Optional[argparse.Namespace] = None,
             device: str | torch.device = "cpu") -> "DeepFeatureXMethod":
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        if not folder.is_dir():
            raise DIFError(f"model folder not found: {shown(folder)}")
        if not (folder / "config.json").is_file():
            raise DIFError(f"{shown(folder)} has no config.json (not a DeepFeatureX complete model)")
        raw = read_json(folder / "config.json")
        where = shown(folder / "config.json")
        if not isinstance(raw, dict):
            raise DIFError(f"{where}: expected a JSON object")
        names = set(DFXConfig.__dataclass_fields__)
        cfg = validate_fields(DFXConfig(**{k: v for k, v in raw.items() if k in names}), where=f"{where}: ")
        path = folder / MODEL_FILE
        payload = read_model_file(path, FORMAT, "DeepFeatureX model", "train it with python -m dif.deepfeaturex "
                                                                      "train-complete")
        classes = payload.get("classes")
        if not (isinstance(classes, list) and 2 <= len(classes) <= MAX_CLASSES and all(isinstance(c, str) for c in classes)):
            raise DIFError(f"{shown(path)}: 'classes' must be a list of 2 to {MAX_CLASSES} names (checked before any "
                           f"network is built)")
        if payload.get("backbone") != cfg.backbone:
            raise DIFError(f"{shown(path)} holds a {payload.get('backbone')!r} model but config.json says {cfg.backbone!r}")
        bases_sd, head_sd = payload.get("bases"), payload.get("head")
        if not (isinstance(bases_sd, list) and len(bases_sd) == len(classes) and isinstance(head_sd, dict)):
            raise DIFError(f"{shown(path)}: expected one base model per class and a head")
        m = cls(cfg, classes)
        m.real  # a real class must exist
        bases = []
        for sd in bases_sd:
            net, _ = build_backbone(cfg.backbone, 2, "none", cfg.input_side)
            net = headless(net, cfg.backbone)
            _load(net, sd, path)
            bases.append(net)
        head = FusionHead(len(classes), len(classes))
        _load(head, head_sd, path)
        m.model = CompleteModel(bases, head).to(device).eval()
        m.path, m.device = path, torch.device(device)
        return m

    # ---------------------------------------------------------------- scoring
    @property
    def threshold(self) -> float:
        return 0.5

    def prepare_key(self, allow_smaller: bool) -> Hashable:
        return ("resize", self.config.image_size, self.config.crop)

    def prepare(self, allow_smaller: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        return resize_square(self.config.image_size, self.config.crop)

    def feature_key(self) -> Hashable:
        return ("deepfeaturex", id(self))

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        with torch.no_grad():
            return torch.softmax(self.model(normalise(batch.to(self.device))).float(), dim=1)

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        return (1.0 - features[:, self.real]).double().cpu().numpy()

    def info(self) -> dict:
        return {"checkpoint": str(self.path), "backbone": self.config.backbone, "classes": self.classes,
                "extractor": f"deepfeaturex:{self.config.backbone}"}

    def summary_line(self) -> str:
        return (f"DeepFeatureX {shown(self.path) if self.path else '(in memory)'} | backbone {self.config.backbone} | classes {', '.join(self.classes)} "
                f"| score P(generated) = 1 - P({self.classes[self.real]}), threshold 0.5")

    def input_requirement(self) -> str:
        return "readable"


def read_model_file(path: Path, fmt: str, what: str, hint: str) -> dict:
    """A weights-only model file of ``fmt``; DIFError naming ``what`` (and ``hint`` when missing)."""
    if not path.is_file():
        raise DIFError(f"no {what} in {shown(path.parent)}: {hint}")
    payload = load_weights_only(path, what)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise DIFError(f"{shown(path)} is not a {what} file")
    return payload


def _load(net: torch.nn.Module, sd: Any, path: Path) -> None:
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DIFError(f"{shown(path)}: a state dict is not a dict of tensors")
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in sd.values()):
        raise DIFError(f"{shown(path)}: weights hold NaN or infinite values")
    try:
        net.load_state_dict(sd)
    except RuntimeError as exc:
        from ..errors import first_line

        raise DIFError(f"{shown(path)}: weights do not fit the recorded backbone ({first_line(exc, 120)})") from None


METHOD_CLASS = DeepFeatureXMethod
