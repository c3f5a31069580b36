"""DIF (Deep Image Fingerprint) as a registered method: a fingerprint, its extractor, its centres."""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..calibration import calibrate, choose_centres, load_calibration, save_calibration
from ..checkpoint import checkpoint_path, load_fingerprint_dir, save_checkpoint
from ..config import DIFConfig
from ..data import draw_subset, run_in_chunks, tile_prepare
from ..detect import Detector
from ..errors import DIFError, shown
from ..extractors import DEFAULT_EXTRACTOR, ResidualExtractor, build_extractor, extractor_identity, same_extractor
from ..extractors.base import EVAL_PRECISION, PRECISIONS
from ..fingerprint import TrainState, epoch_steps, train_fingerprint
from ..robustness import parse_reencode
from .base import Method

log = logging.getLogger(__name__)
_OWNED = re.compile(r"^(chk_\d+\.pt|config\.json|calibration\.json|train_files\.json|fingerprint\.png|"
                    r"fingerprint_fft\.png|training\.png)$")


def _option(options: Optional[argparse.Namespace], name: str, default: Any = None) -> Any:
    return getattr(options, name, default) if options is not None else default


class DIFMethod(Method):
    """A DIF fingerprint with the residual extractor it was made with and its decision centres."""

    name = "dif"
    score_label = "correlation"

    def __init__(self, config: DIFConfig) -> None:
        self.config = config
        self.state: Optional[TrainState] = None
        self.detector: Optional[Detector] = None
        self.extractor: Optional[ResidualExtractor] = None
        self.calibration: dict = {}
        self.path: Optional[Path] = None
        self.centres_method = "paper"
        self.reencode_name = config.reencode
        self.train_files: dict = {}
        self.extractor_choice: dict = {}  # --extractor auto: every candidate's out-of-fold AUC
        self.device = torch.device("cpu")
        self.tiles = config.tiles  # scoring: as trained unless eval's --tiles says otherwise

    # ---------------------------------------------------------------- building and files
    @classmethod
    def build(cls, config: DIFConfig) -> "DIFMethod":
        return cls(config.validate())

    def fit(self, paths: Sequence[Path], labels: Sequence[int], *, device: torch.device,
            workdir: Optional[Path] = None, progress: bool = False) -> dict:
        """Draw up to ``train_size`` images per class, compute their residuals once (plus the
        augmented copies), train the fingerprint (checkpoints every ``checkpoint_every`` epochs
        into ``workdir``) and its centres."""
        cfg = self.config
        parse_reencode(cfg.reencode)
        self.device = torch.device(device)
        from ..choose import config_residuals, parse_auto

        auto_spec = parse_auto(cfg.extractor)
        auto = auto_spec is not None
        extractor = None if auto else build_extractor(cfg.extractor or DEFAULT_EXTRACTOR, device,
                                                        precision=cfg.extractor_precision)
        if extractor is not None:
            cfg.extractor = extractor.spec
        y = np.asarray(labels)
        all_real = [p for p, t in zip(paths, y) if t == 0]
        all_fake = [p for p, t in zip(paths, y) if t == 1]
        real = draw_subset(all_real, cfg.train_size, cfg.seed)
        fake = draw_subset(all_fake, cfg.train_size, cfg.seed + 1)
        notes = [f"{len(have)} {name} images available (< --train-size {cfg.train_size}); using all of them"
                 for name, have in (("real", all_real), ("fake", all_fake)) if len(have) < cfg.train_size]
        t0 = time.perf_counter()
        if auto:
            from ..choose import choose_extractor

            spec, ts, self.extractor_choice = choose_extractor(real + fake, [0] * len(real) + [1] * len(fake), cfg,
                                                               self.device, folds=auto_spec[0], progress=progress,
                                                               fold_epochs=auto_spec.fold_epochs)
            cfg.extractor = spec
            extractor = build_extractor(spec, device, precision=cfg.extractor_precision)
        else:
            log.debug("computing residuals of %d real + %d fake images (%s, crop %d) on %s", len(real), len(fake),
                      extractor.spec, cfg.crop, device)
            ts = config_residuals(real + fake, [0] * len(real) + [1] * len(fake), extractor, cfg, device, progress)
        cache = ts.cache
        t_res = time.perf_counter() - t0
        n_real, n_fake = int((cache.labels == 0).sum()), int((cache.labels == 1).sum())
        if n_real == 0 or n_fake == 0:
            raise DIFError(f"no usable {'real' if n_real == 0 else 'fake'} images left (need at least one of each; "
                           f"images must be readable and at least {cfg.crop}x{cfg.crop})")
        self.extractor = extractor  # kept for scoring right after training
        common = os.path.commonpath([str(Path(p).resolve().parent) for p in paths]) if paths else ""
        self.train_files = {
            "data_dir": str(Path(common).parent) if Path(common).name in ("0_real", "1_fake") else common,
            "real": sorted({str(p) for p, t in zip(cache.paths, cache.labels.tolist()) if t == 0}),
            "fake": sorted({str(p) for p, t in zip(cache.paths, cache.labels.tolist()) if t == 1}),
            "skipped": [{"path": str(p), "reason": r} for p, r in cache.skipped],
        }

        def on_epoch_end(state: TrainState) -> None:
            if workdir is not None and (state.epoch % cfg.checkpoint_every == 0 or state.epoch == cfg.epochs):
                save_checkpoint(checkpoint_path(workdir, state.epoch), state, cfg.extractor)

        t1 = time.perf_counter()
        per_image = ts.per_image  # tiles: an epoch counts images, not tiles
        state = train_fingerprint(cache.residuals, cache.labels, cfg, device=device, on_epoch_end=on_epoch_end,
                                  progress=progress, steps_per_epoch=epoch_steps(len(cache.labels), per_image,
                                                                                 cfg.batch_size))
        t_train = time.perf_counter() - t1
        self.calibration = calibrate(state, cfg, cache.residuals, cache.labels, ts.groups, device=device,
                                     progress=progress, clean=ts.clean, per_image=per_image)
        self.state = state
        self.detector = replace(Detector.from_state(state, cfg.centre_steps), max_shift=cfg.max_shift)
        self.reencode_name = cfg.reencode
        if self.extractor_choice.get("fallback"):
            notes.append(f"--extractor auto: {self.extractor_choice['fallback']}")
        elif self.extractor_choice:
            ch = self.extractor_choice
            cands = ", ".join(f"{c['extractor']} {c['auc']:.3f}" for c in ch["candidates"])
            notes.append(f"--extractor auto chose {cfg.extractor} (out-of-fold AUC, {ch['folds']} folds of "
                         f"{ch['fold_epochs']} epochs on up to {ch['screen_tiles']} tiles per image: {cands}; "
                         f"ties within {ch['tie']} go to the cheaper one"
                         + (f"; not scored, as none could win: {', '.join(ch['skipped'])}" if ch.get("skipped")
                            else "") + ")")
        return {"residual_seconds": t_res, "train_seconds": t_train, "n_real": n_real, "n_fake": n_fake,
                "skipped": len(cache.skipped), "notes": notes, "extractor_choice": self.extractor_choice}

    def save(self, folder: Path) -> None:
        from .. import plots

        if self.state is None or self.detector is None:
            raise ValueError("nothing to save: fit or load first")
        folder = Path(folder)
        self.config.save(folder, self.name, extra={"extractor_choice": self.extractor_choice} if self.extractor_choice
                         else None)
        save_checkpoint(checkpoint_path(folder, self.state.epoch), self.state, self.config.extractor)
        save_calibration(folder, self.calibration)
        if self.train_files:
            write_text_atomic(folder / "train_files.json", json.dumps(self.train_files, indent=1) + "\n")
        fp, det = self.state.fingerprint, self.detector
        plots.save_image_png(fp, folder / "fingerprint.png", f"DIF fingerprint (epoch {self.state.epoch})")
        plots.save_spectrum_png(fp, folder / "fingerprint_fft.png", "Fingerprint spectrum (log |FFT|)")
        plots.save_training_png(self.state.loss, self.state.train_real, self.state.train_fake, folder / "training.png",
                                det.mu_real, det.mu_fake)

    @classmethod
    def from_state(cls, state: TrainState, extractor: str, config: Optional[DIFConfig] = None,
                   device: str | torch.device = "cpu") -> "DIFMethod":
        """A method around a fingerprint in memory (its paper centres, the given extractor)."""
        m = cls(config or DIFConfig(extractor=extractor, tiles=1))
        m.state, m.device = state, torch.device(device)
        m.detector = Detector.from_state(state, m.config.centre_steps)
        m.extractor = build_extractor(extractor, device)
        return m

    @classmethod
    def owns_file(cls, name: str) -> bool:
        return bool(_OWNED.match(name))

    @classmethod
    def add_eval_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("DIF fingerprints")
        g.add_argument("--extractor", default=None, metavar="SPEC",
                       help="residual extractor (default: the fingerprint's own)")
        g.add_argument("--allow-mixed-extractor", action="store_true",
                       help="allow an --extractor other than the fingerprint's own")
        g.add_argument("--extractor-precision", default=EVAL_PRECISION, choices=list(PRECISIONS),
                       help="arithmetic of the residual extractor")
        g.add_argument("--score", default="corr", choices=["corr", "shift"],
                       help="correlation, or its best over circular shifts")
        g.add_argument("--max-shift", type=int, default=None, metavar="PX",
                       help="search range of --score shift (default: as trained)")
        g.add_argument("--centres", default="auto", choices=["auto", "paper", "train", "augmented", "cv"],
                       help="decision centres (docs/dif.md)")
        g.add_argument("--reencode", default=None, metavar="jpeg:Q|png|none",
                       help="re-encode every image first (default: as trained)")
        g.add_argument("--tiles", type=int, default=None, metavar="N",
                       help="score the mean of up to N tiles (0 = all; default: as trained)")

    @classmethod
    def load(cls, folder: Path, epoch: Optional[int] = None, options: Optional[argparse.Namespace] = None,
             device: str | torch.device = "cpu") -> "DIFMethod":
        loaded = load_fingerprint_dir(folder, epoch)
        cfg = loaded.config or DIFConfig(extractor="unknown (authors' DnCNN)", tiles=1)  # theirs: the centre crop
        m = cls(cfg)
        m.path, m.state, m.device = loaded.path, loaded.state, torch.device(device)
        try:
            det = Detector.from_state(loaded.state, cfg.centre_steps)
        except ValueError as exc:
            raise DIFError(f"{shown(loaded.path)}: {exc}") from None
        m.calibration = load_calibration(loaded.path.parent)
        max_shift = _option(options, "max_shift")
        if max_shift is not None and not 0 <= max_shift <= 4096:
            raise DIFError(f"--max-shift must be in [0, 4096] (got {max_shift}); shifts beyond half the crop are "
                           "clipped")
        det.max_shift = int(max_shift if max_shift is not None else m.calibration.get("max_shift", cfg.max_shift))
        m.detector, m.centres_method = choose_centres(det, m.calibration, _option(options, "score", "corr"),
                                                      _option(options, "centres", "auto"))
        spec = _extractor_spec(loaded.path, loaded.extractor, _option(options, "extractor"),
                               bool(_option(options, "allow_mixed_extractor", False)))
        m.extractor = build_extractor(spec, device, precision=_option(options, "extractor_precision", EVAL_PRECISION))
        reencode = _option(options, "reencode")
        if reencode is None:
            reencode = cfg.reencode
        m.reencode_name = "" if reencode in ("", "none") else reencode
        parse_reencode(m.reencode_name or None)
        tiles = _option(options, "tiles")
        if tiles is not None and not 0 <= tiles <= 4096:
            raise DIFError(f"--tiles must be in [0, 4096] (got {tiles})")
        m.tiles = int(cfg.tiles if tiles is None else tiles)
        return m

    # ---------------------------------------------------------------- scoring
    @property
    def crop(self) -> tuple[int, int]:
        assert self.detector is not None
        return self.detector.crop

    @property
    def threshold(self) -> float:
        assert self.detector is not None
        return self.detector.oriented_threshold

    def prepare_key(self, allow_smaller: bool) -> Hashable:
        if self.tiles == 1:
            return ("centre-crop", self.crop, allow_smaller)
        return ("tiles", self.crop, self.tiles, self.config.tile_grid, allow_smaller)

    def prepare(self, allow_smaller: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        return tile_prepare(self.crop, self.tiles, self.config.tile_grid, allow_smaller)

    def feature_key(self) -> Hashable:
        assert self.extractor is not None
        return ("residual", extractor_identity(self.extractor.spec), self.extractor.precision)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """Residuals: N x 3 x h x w, or N x T x 3 x h x w for T tiles per image."""
        assert self.extractor is not None
        if batch.dim() == 5:
            n, t = batch.shape[:2]
            res = run_in_chunks(self.extractor, batch.flatten(0, 1), 16, self.device)
            return res.reshape(n, t, *res.shape[1:])
        with torch.no_grad():
            return self.extractor(batch.to(self.device)).float()

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        """One score per image: a tiled image's is the mean of its tiles' (the noise of one tile's
        correlation averages out; the fingerprint's trace, present in every tile, does not)."""
        assert self.detector is not None
        if features.dim() == 5:
            n, t = features.shape[:2]
            per_tile = self.detector.correlate(features.flatten(0, 1)).reshape(n, t)
            return self.detector.oriented(per_tile.mean(axis=1))
        return self.detector.oriented(self.detector.correlate(features))

    def input_transform(self):
        return parse_reencode(self.reencode_name or None), self.reencode_name

    def display_scores(self, scores: np.ndarray) -> np.ndarray:
        assert self.detector is not None
        return self.detector.sign * np.asarray(scores, dtype=np.float64)

    def metric_fields(self) -> dict:
        d = self.detector
        assert d is not None
        return {"threshold": d.threshold, "mu_real": d.mu_real, "mu_fake": d.mu_fake}

    def info(self) -> dict:
        assert self.detector is not None and self.extractor is not None
        return {"checkpoint": str(self.path), "extractor": self.extractor.spec, "score": self.detector.score,
                "centres": self.centres_method, "reencode": self.reencode_name, "precision": self.extractor.precision,
                "tiles": self.tiles}

    def summary_line(self) -> str:
        d = self.detector
        assert d is not None and self.extractor is not None
        return (f"Fingerprint {shown(self.path) if self.path else '(in memory)'} | extractor {self.extractor.spec} | score {d.score} | centres "
                f"{self.centres_method}: real {d.mu_real:.5f}, fake {d.mu_fake:.5f}"
                + (f" | re-encoded {self.reencode_name}" if self.reencode_name else "")
                + (f" | {self.extractor.precision}" if self.extractor.precision not in ("fp32", EVAL_PRECISION) else "")
                + (f" | tiles {self.tiles or 'all'}" if self.tiles != 1 else ""))

    def digest(self) -> str:
        import hashlib

        return hashlib.sha256((super().digest() + repr(self.feature_key()) + str(self.detector.max_shift)
                               + ("" if self.tiles == 1 else f"tiles{self.tiles}/{self.config.tile_grid}")).encode()
                              ).hexdigest()[:16]

    def histogram_marks(self) -> dict[str, float]:
        d = self.detector
        assert d is not None
        return {"real centre": d.mu_real, "fake centre": d.mu_fake, "threshold": d.threshold}

    def input_requirement(self) -> str:
        h, w = self.crop
        return f"readable and at least {w}x{h}"

    def signature(self) -> Optional[torch.Tensor]:
        return None if self.state is None else self.state.fingerprint


def _extractor_spec(path: Path, recorded: Optional[str], asked: Optional[str], allow_mixed: bool) -> str:
    """The extractor to score a fingerprint with: its own unless ``asked`` names another, which is
    refused (mixed residuals make meaningless scores) unless ``allow_mixed``."""
    if asked:
        if recorded and not same_extractor(recorded, asked):
            if not allow_mixed:
                raise DIFError(f"{shown(path)} was made with the {recorded} extractor; scoring it with {asked} mixes "
                               "residual extractors (pass --allow-mixed-extractor to do it anyway)")
            log.warning("%s was made with %s, scoring with %s (--allow-mixed-extractor)", shown(path), recorded, asked)
        return asked
    if recorded:
        return recorded
    log.warning("%s records no residual extractor (the authors' files do not); scoring with %s", shown(path),
                DEFAULT_EXTRACTOR)
    return DEFAULT_EXTRACTOR


METHOD_CLASS = DIFMethod
