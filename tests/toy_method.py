"""A second method for the harness tests: the mean high-frequency energy of the centre crop,
thresholded halfway between the class means. Shows that a method is one module plus one
registry line, and that eval_dif.py needs no code of its own for it."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from dif.atomic import write_text_atomic
from dif.config import read_json
from dif.data import center_crop, load_image
from dif.methods.base import Method


class ToyMethod(Method):
    name = "toy"
    score_label = "energy"

    def __init__(self, crop: int = 32, threshold: float = 0.0) -> None:
        self.crop, self._threshold = crop, threshold

    @classmethod
    def build(cls, config):
        return cls(**config)

    def fit(self, paths, labels, *, device, workdir=None, progress=False) -> dict:
        s = self.score([load_image(p) for p in paths])
        y = np.asarray(labels)
        self._threshold = 0.5 * (s[y == 0].mean() + s[y == 1].mean())
        return {}

    def save(self, folder: Path) -> None:
        write_text_atomic(Path(folder) / "config.json",
                          json.dumps({"method": self.name, "crop": self.crop, "threshold": self._threshold}))

    @classmethod
    def load(cls, folder: Path, epoch=None, options=None, device="cpu") -> "ToyMethod":
        d = read_json(Path(folder) / "config.json")
        return cls(d["crop"], d["threshold"])

    @property
    def threshold(self) -> float:
        return self._threshold

    def prepare_key(self, allow_smaller):
        return ("centre-crop", (self.crop, self.crop), allow_smaller)

    def prepare(self, allow_smaller):
        return functools.partial(center_crop, size=(self.crop, self.crop), allow_smaller=allow_smaller)

    def feature_key(self):
        return ("toy-energy",)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch[..., 1:, :] - batch[..., :-1, :]).abs().mean(dim=(1, 2, 3))[:, None]

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        return features[:, 0].double().numpy()


METHOD_CLASS = ToyMethod
