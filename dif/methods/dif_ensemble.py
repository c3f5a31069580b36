"""Several DIF fingerprints, one per residual extractor, scored together (``--extractor ensemble``).

No single extractor wins on every data set (the tables in docs/dif.md), and ``auto``'s out-of-fold
choice is noisy with a few dozen training images. The ensemble keeps every candidate instead:
each member is an ordinary DIF fingerprint (its own folder, loadable on its own), and an image's
score is the mean over members of ``(score - threshold) / |mu_fake - mu_real|``, the member's
oriented correlation put on a common scale (0 at its decision boundary, 0.5 at its fake centre),
so the ensemble's threshold is 0. Cost: one residual pass and one fingerprint per member.
"""
from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from ..config import DIFConfig, read_json
from ..errors import DIFError, shown
from .base import Method
from .dif import DIFMethod

DEFAULT_MEMBERS = ("highpass", "wavelet-dwt", "wavelet", "dncnn")  # the candidates of --extractor auto
_MEMBER_DIR = re.compile(r"^m\d+_[A-Za-z0-9._-]+$")


def parse_members(spec: str) -> list[str]:
    """``ensemble`` (the default members) or ``ensemble:A,B,...`` -> the member extractor specs."""
    head, _, rest = (spec or "").partition(":")
    if head.strip().lower() != "ensemble":
        raise DIFError(f"not an ensemble spec: {spec!r}")
    members = [m.strip() for m in rest.split(",") if m.strip()] if rest.strip() else list(DEFAULT_MEMBERS)
    if len(members) < 2:
        raise DIFError(f"--extractor {spec}: an ensemble needs at least two extractors, comma-separated")
    bad = [m for m in members if m.lower().partition(":")[0] in ("auto", "ensemble")]
    if bad:
        raise DIFError(f"--extractor {spec}: {bad[0]!r} cannot be an ensemble member (name fixed extractors)")
    if len(set(members)) < len(members):
        raise DIFError(f"--extractor {spec}: an extractor is named twice")
    return members


def member_dir(k: int, spec: str) -> str:
    return f"m{k}_" + re.sub(r"[^A-Za-z0-9._-]", "-", spec)


class DIFEnsemble(Method):
    """Fingerprints of one training set made with different residual extractors (module docstring)."""

    name = "dif-ensemble"
    score_label = "scaled score"

    def __init__(self, config: DIFConfig, members: Sequence[DIFMethod], specs: Sequence[str]) -> None:
        self.config = config
        self.members = list(members)
        self.specs = list(specs)
        self.path: Optional[Path] = None
        self.device = torch.device("cpu")

    # ---------------------------------------------------------------- building and files
    @classmethod
    def build(cls, config: DIFConfig) -> "DIFEnsemble":
        config = config.validate()
        specs = parse_members(config.extractor)
        return cls(config, [DIFMethod.build(replace(config, extractor=s)) for s in specs], specs)

    def fit(self, paths: Sequence[Path], labels: Sequence[int], *, device: torch.device,
            workdir: Optional[Path] = None, progress: bool = False) -> dict:
        """Train every member on the same images (each in its own sub-folder of ``workdir``)."""
        self.device = torch.device(device)
        report: dict = {"residual_seconds": 0.0, "train_seconds": 0.0, "skipped": 0, "notes": []}
        for k, (spec, m) in enumerate(zip(self.specs, self.members)):
            sub = None
            if workdir is not None:
                sub = Path(workdir) / member_dir(k, spec)
                sub.mkdir(parents=True, exist_ok=True)
            r = m.fit(paths, labels, device=device, workdir=sub, progress=progress)
            report["residual_seconds"] += r["residual_seconds"]
            report["train_seconds"] += r["train_seconds"]
            report["skipped"] = max(report["skipped"], r["skipped"])  # the same images for every member
            report["notes"] += [n for n in r["notes"] if n not in report["notes"]]
        return report

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        for k, (spec, m) in enumerate(zip(self.specs, self.members)):
            m.save(folder / member_dir(k, spec))
        self.config.save(folder, self.name, extra={"members": [member_dir(k, s) for k, s in enumerate(self.specs)]})

    @classmethod
    def owns_file(cls, name: str) -> bool:
        return name == "config.json" or bool(_MEMBER_DIR.match(name))

    @classmethod
    def load(cls, folder: Path, epoch: Optional[int] = None, options: Optional[argparse.Namespace] = None,
             device: str | torch.device = "cpu") -> "DIFEnsemble":
        folder = Path(folder)
        if folder.is_file():
            raise DIFError(f"{shown(folder)}: an ensemble is a folder (give the folder, not one of its files)")
        cfg_path = folder / "config.json"
        record = read_json(cfg_path)
        names = record.get("members") if isinstance(record, dict) else None
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and _MEMBER_DIR.match(n)
                                                                   for n in names):
            raise DIFError(f"{shown(cfg_path)}: 'members' must list the ensemble's member folders")
        if options is not None and getattr(options, "extractor", None):
            raise DIFError("an ensemble scores each member with its own extractor: drop --extractor")
        config = DIFConfig.from_dict(record, where=shown(cfg_path))
        members = []
        for n in names:
            if not (folder / n).is_dir():
                raise DIFError(f"{shown(folder / n)}: member folder missing")
            members.append(DIFMethod.load(folder / n, epoch, options, device))
        crops = {m.crop for m in members}
        if len(crops) > 1:
            raise DIFError(f"{shown(folder)}: members with different crops {sorted(crops)}")
        m = cls(config, members, [x.extractor.spec for x in members])
        m.path, m.device = folder, torch.device(device)
        return m

    # ---------------------------------------------------------------- scoring
    @property
    def threshold(self) -> float:
        return 0.0

    def prepare_key(self, allow_smaller: bool) -> Hashable:
        return self.members[0].prepare_key(allow_smaller)

    def prepare(self, allow_smaller: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.members[0].prepare(allow_smaller)

    def feature_key(self) -> Hashable:
        return ("dif-ensemble", id(self))  # the members' scores: never shared with another method

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """N x members scaled scores (the residuals of each extractor are used once and dropped)."""
        cols = [self.scaled(m, m.score_features(m.features(batch))) for m in self.members]
        return torch.from_numpy(np.stack(cols, axis=1))

    @staticmethod
    def scaled(member: DIFMethod, scores: np.ndarray) -> np.ndarray:
        """A member's oriented scores minus its threshold, over the gap between its centres."""
        d = member.detector
        gap = abs(d.mu_fake - d.mu_real)
        if not gap > 0:
            raise DIFError(f"{shown(member.path) if member.path else member.config.extractor}: its two centres are "
                           "equal; the member cannot be scaled")
        return (np.asarray(scores, dtype=np.float64) - member.threshold) / gap

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        return features.double().mean(dim=1).cpu().numpy()

    def input_transform(self):
        return self.members[0].input_transform()

    def metric_fields(self) -> dict:
        return {"threshold": 0.0}

    def info(self) -> dict:
        return {"method": self.name, "checkpoint": str(self.path), "extractor": "ensemble:" + ",".join(self.specs),
                "members": [m.info() for m in self.members]}

    def summary_line(self) -> str:
        return (f"Ensemble {shown(self.path) if self.path else '(in memory)'} of {len(self.members)} fingerprints "
                f"({', '.join(self.specs)}) | mean of (score - threshold) / |centre gap| | threshold 0")

    def digest(self) -> str:
        return hashlib.sha256("".join([super().digest()] + [m.digest() for m in self.members]).encode()
                              ).hexdigest()[:16]

    def input_requirement(self) -> str:
        return self.members[0].input_requirement()


METHOD_CLASS = DIFEnsemble
