"""Artificial fingerprints as a registered method: a decoder and a database of user fingerprints
score an image with -log10 of the Bonferroni-corrected binomial p-value of its best-matching user
(threshold -log10(alpha), 6 at the default alpha 1e-6), so eval_dif.py gives accuracy, AUC and
robustness for it like for any detector. Made by ``python -m dif.artificial detector``."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from ..atomic import RunFolder, csv_text, write_text_atomic
from ..config import read_json
from ..errors import DIFError, shown
from ..methods.base import Method
from .bits import DEFAULT_ALPHA, alpha_arg, attribute, bits_to_str, decode_bits, threshold_score

DECODER = "decoder.pth"
DATABASE = "database.csv"
_OWNED = re.compile(r"^(config\.json|decoder\.pth|database\.csv)$")


class ArtificialMethod(Method):
    """A fingerprint decoder + the fingerprints of its users (see the module docstring)."""

    name = "artificial"
    score_label = "neg_log10_p"

    def __init__(self, decoder, users: Sequence[str], database: np.ndarray, alpha: float = DEFAULT_ALPHA,
                 celeba: bool = False) -> None:
        self.decoder = decoder
        self.users = list(users)
        self.database = np.asarray(database, dtype=np.uint8)
        self.alpha = alpha
        self.celeba = celeba
        self.path: Optional[Path] = None
        self.device = torch.device("cpu")

    @classmethod
    def build(cls, config) -> "ArtificialMethod":
        raise DIFError("artificial fingerprints are not trained on real/fake images: train an encoder/decoder with "
                       "python -m dif.artificial train, then make a detector with python -m dif.artificial detector")

    def fit(self, paths, labels, *, device, workdir=None, progress=False) -> dict:
        raise DIFError("artificial fingerprints are not trained on real/fake images (python -m dif.artificial train)")

    def save(self, folder: Path) -> None:
        from .weights import save_model

        folder = Path(folder)
        save_model(folder / DECODER, self.decoder)
        write_text_atomic(folder / DATABASE, csv_text(["user", "bits"], [[u, bits_to_str(b)] for u, b in
                                                                       zip(self.users, self.database)]))
        write_text_atomic(folder / "config.json", json.dumps(
            {"method": self.name, "alpha": self.alpha, "use_celeba_preprocessing": self.celeba,
             "resolution": self.decoder.resolution, "fingerprint_length": self.decoder.fingerprint_length,
             "users": len(self.users)}, indent=1) + "\n")

    @classmethod
    def owns_file(cls, name: str) -> bool:
        return bool(_OWNED.match(name))

    @classmethod
    def add_eval_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("artificial fingerprints")
        g.add_argument("--alpha", type=alpha_arg, default=None,
                       help="significance of an attribution (default: the detector's)")

    @classmethod
    def load(cls, folder: Path, epoch: Optional[int] = None, options: Optional[argparse.Namespace] = None,
             device: str | torch.device = "cpu") -> "ArtificialMethod":
        from .files import read_database
        from .weights import load_model

        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        cfg = read_json(folder / "config.json")
        where = shown(folder / "config.json")
        if not isinstance(cfg, dict):
            raise DIFError(f"{where}: expected a JSON object")
        alpha = getattr(options, "alpha", None) if options is not None else None
        alpha = cfg.get("alpha", DEFAULT_ALPHA) if alpha is None else alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise DIFError(f"{where}: alpha must be in (0, 1), got {alpha!r}")
        celeba = cfg.get("use_celeba_preprocessing", False)
        if not isinstance(celeba, bool):
            raise DIFError(f"{where}: use_celeba_preprocessing must be true or false")
        dec = load_model(folder / DECODER, "decoder", device=device)
        users, db = read_database(folder / DATABASE, dec.fingerprint_length)
        m = cls(dec, users, db, float(alpha), celeba)
        m.path, m.device = folder / DECODER, torch.device(device)
        return m

    # ---------------------------------------------------------------- scoring
    @property
    def threshold(self) -> float:
        return threshold_score(self.alpha)

    def prepare_key(self, allow_smaller: bool) -> Hashable:
        if self.decoder.frame_psnr:
            return ("whole-frame", self.decoder.resolution)
        return ("square-resize", self.decoder.resolution, self.celeba)

    def prepare(self, allow_smaller: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.decoder.frame_psnr:  # a whole-photo pair reads the whole frame (dif.artificial.frame)
            from .frame import ReadCanvas

            return ReadCanvas(self.decoder.resolution)
        from .train import Preprocess

        return Preprocess(self.decoder.resolution, self.celeba)

    def feature_key(self) -> Hashable:
        return ("artificial-decoder", id(self.decoder))

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.decoder.frame_psnr:
                from .frame import read_frame

                return decode_bits(read_frame(self.decoder, batch.to(self.device))[0])
            return decode_bits(self.decoder(batch.to(self.device)))

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        bits = features.cpu().numpy().astype(np.uint8)
        return np.array([min(a.neg_log10_p, 1e6) for a in attribute(bits, self.users, self.database, self.alpha)])

    def info(self) -> dict:
        return {"method": self.name, "checkpoint": str(self.path), "users": len(self.users), "alpha": self.alpha,
                "resolution": self.decoder.resolution, "fingerprint_length": self.decoder.fingerprint_length,
                "extractor": f"artificial:{self.decoder.resolution}"}

    def summary_line(self) -> str:
        return (f"Artificial fingerprints {shown(self.path) if self.path else '(in memory)'} | "
                f"{self.decoder.resolution} px, {self.decoder.fingerprint_length} bits, {len(self.users)} user(s) | "
                f"score -log10(Bonferroni p), threshold {self.threshold:.3g} (alpha {self.alpha:g})")


def make_detector(args) -> Path:
    """``python -m dif.artificial detector``: a CHECK_DIR of a decoder and a fingerprint database."""
    from .files import read_database, read_fingerprint_file
    from .train import check_celeba
    from .bits import parse_bits
    from .weights import load_model

    dec = load_model(args.decoder_path, "decoder")
    n = dec.fingerprint_length
    check_celeba(dec.resolution, args.use_celeba_preprocessing, "decoder")
    if args.database is not None:
        users, db = read_database(args.database, n)
    elif args.fingerprint is not None:
        users, db = ["user"], parse_bits(args.fingerprint, n, "--fingerprint: ")[None]
    else:
        fps = read_fingerprint_file(args.fingerprints, n)
        distinct = {bits_to_str(b) for b in fps.values()}
        if len(distinct) != 1:
            raise DIFError(f"{shown(args.fingerprints)} holds {len(distinct)} different fingerprints; use --database "
                           "for several users")
        users, db = ["user"], np.stack([next(iter(fps.values()))])
    m = ArtificialMethod(dec, users, db, args.alpha, args.use_celeba_preprocessing)
    with RunFolder(args.output_dir, args.overwrite, ArtificialMethod.owns_file, what="--output_dir") as run:
        m.save(run.tmp)
        run.commit()
    print(f"detector for {len(users)} user(s), {n} bits at {dec.resolution} px, alpha {args.alpha:g} "
          f"(threshold -log10 p > {threshold_score(args.alpha):.3g}); wrote {args.output_dir}")
    return Path(args.output_dir)


METHOD_CLASS = ArtificialMethod
