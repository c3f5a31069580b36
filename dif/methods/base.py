"""The interface every detection method implements.

A method is built from its config, ``fit`` on labelled image files, ``save``d to and ``load``ed
from a checkpoint folder (its name recorded in ``config.json``), and scores images: one float per
image, larger = more likely generated, compared with its own ``threshold``.

Scoring is split in three steps so that the harness (``dif.evaluate``) can stream any number of
images through any number of methods and share work between them:

- ``prepare(img)``: per image, in the decoding workers (a crop, a resize); methods with equal
  ``prepare_key`` share the prepared tensors;
- ``features(batch)``: per batch (a residual, a backbone's output); methods with equal
  ``feature_key`` share them, so ten fingerprints made with one denoiser run it once;
- ``score_features(features)``: the scores.
"""
from __future__ import annotations

import abc
import argparse
from pathlib import Path
from typing import Any, Callable, ClassVar, Hashable, Optional, Sequence

import numpy as np
import torch


class Method(abc.ABC):
    """A detector of generated images behind one interface (see the module docstring)."""

    name: ClassVar[str]
    score_label: ClassVar[str] = "score"   # what ``display_scores`` are called in tables and CSV files

    # ---------------------------------------------------------------- building and files
    @classmethod
    @abc.abstractmethod
    def build(cls, config: Any) -> "Method":
        """A new, untrained method from its configuration."""

    @abc.abstractmethod
    def fit(self, paths: Sequence[Path], labels: Sequence[int], *, device: torch.device,
            workdir: Optional[Path] = None, progress: bool = False) -> dict:
        """Train on labelled image files (0 real, 1 generated); intermediate files may be written
        to ``workdir`` (the run folder being made). Returns a report for the user."""

    @abc.abstractmethod
    def save(self, folder: Path) -> None:
        """Write everything ``load`` needs (and ``config.json`` naming the method) into ``folder``."""

    @classmethod
    @abc.abstractmethod
    def load(cls, folder: Path, epoch: Optional[int] = None, options: Optional[argparse.Namespace] = None,
             device: str | torch.device = "cpu") -> "Method":
        """A trained method from a checkpoint folder (or one checkpoint file); ``options`` are the
        parsed evaluation flags, including those of ``add_eval_arguments``."""

    @classmethod
    def add_eval_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Evaluation flags of this method (the shared evaluation script adds every method's)."""

    @classmethod
    def owns_file(cls, name: str) -> bool:
        """True for the names of files that ``fit``/``save`` write (``--overwrite`` replaces only
        folders made of such files)."""
        return name == "config.json"

    # ---------------------------------------------------------------- scoring
    @property
    @abc.abstractmethod
    def threshold(self) -> float:
        """Images whose score is above it are called generated."""

    @abc.abstractmethod
    def prepare_key(self, allow_smaller: bool) -> Hashable:
        """Equal keys mean equal ``prepare`` functions."""

    @abc.abstractmethod
    def prepare(self, allow_smaller: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        """Per-image preparation of a decoded 3 x H x W image in [0, 1] (picklable: it runs in the
        decoding workers). With ``allow_smaller`` (perturbed images) an image smaller than the
        method's input is kept if the method can score it; otherwise it raises ImageReadError."""

    @abc.abstractmethod
    def feature_key(self) -> Hashable:
        """Equal keys (with equal prepare keys) mean equal ``features``."""

    @abc.abstractmethod
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """N x ... features of a batch of prepared images (on the method's device)."""

    @abc.abstractmethod
    def score_features(self, features: torch.Tensor) -> np.ndarray:
        """N float64 scores, larger = more likely generated."""

    def score(self, images: torch.Tensor | Sequence[torch.Tensor], allow_smaller: bool = False) -> np.ndarray:
        """Scores of decoded images (a batch or a list of 3 x H x W tensors in [0, 1])."""
        from ..data import same_size_groups

        prep = self.prepare(allow_smaller)
        items = [prep(x) for x in images]
        out = np.full(len(items), np.nan)
        for pos, block in same_size_groups(items):
            out[pos] = self.score_features(self.features(block.to(self.device)))
        return out

    # ---------------------------------------------------------------- reporting
    device: torch.device = torch.device("cpu")

    def input_transform(self) -> tuple[Optional[Callable[[torch.Tensor], torch.Tensor]], str]:
        """What is applied to every image before any perturbation (e.g. a re-encoding the model
        was trained with), and its name ("" for none)."""
        return None, ""

    def display_scores(self, scores: np.ndarray) -> np.ndarray:
        """Scores in the method's own units for tables and CSV files (``score_label``)."""
        return np.asarray(scores, dtype=np.float64)

    def metric_fields(self) -> dict:
        """Extra keys for a metrics dict (e.g. the threshold in the method's own units)."""
        return {}

    def info(self) -> dict:
        """What a results file records about the method (checkpoint, settings)."""
        return {"method": self.name}

    def summary_line(self) -> str:
        """One line printed before evaluating."""
        return f"Method {self.name} | threshold {self.threshold:.5g}"

    def histogram_marks(self) -> dict[str, float]:
        """Vertical lines of the score histogram, in ``display_scores`` units."""
        return {"threshold": self.threshold}

    def input_requirement(self) -> str:
        """What an image must be to be scored, for 'no usable images' errors."""
        return "readable"

    def digest(self) -> str:
        """What identifies this method's scores in a ``--resume`` file: its settings (``info``) and
        the content of its checkpoint file."""
        import hashlib
        import json

        from ..extractors.base import file_digest

        info = self.info()
        h = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode())
        ck = Path(str(info.get("checkpoint", "")))
        if ck.is_file():
            h.update(file_digest(ck).encode())
        return h.hexdigest()[:16]

    def signature(self) -> Optional[torch.Tensor]:
        """A pattern comparable across models of this method (DIF: the fingerprint), for the
        lineage similarity matrix; None when the method has none."""
        return None
