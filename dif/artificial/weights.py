"""Encoder and decoder weight files: weights-only, recording their resolution and fingerprint length.

Their released ``*_encoder.pth`` / ``*_decoder.pth`` (plain state dicts) load too: the decoder's
resolution and both lengths are read from the tensor shapes; an encoder's resolution cannot be
(the network is convolutional), so it comes from ``--image_resolution``. Everything is loaded to the
CPU first (their code passed ``map_location`` to ``load_state_dict``, which breaks without CUDA).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from ..atomic import save_torch_atomic
from ..errors import DIFError, first_line, shown
from ..safe_pickle import load_weights_only
from .models import FingerprintDecoder, FingerprintEncoder, check_length, check_resolution

FORMAT = {"encoder": "dif-artificial-encoder-v1", "decoder": "dif-artificial-decoder-v1"}
# the default pair ships inside the package (its model card beside it), so it is found wherever pip puts it
DEFAULT_PAIR = Path(__file__).resolve().parents[1] / "weights" / "artificial"
DEFAULT_ENCODER, DEFAULT_DECODER = DEFAULT_PAIR / "encoder.pth", DEFAULT_PAIR / "decoder.pth"


def save_model(path: Path, model: FingerprintEncoder | FingerprintDecoder, extra: Optional[dict] = None) -> Path:
    kind = "encoder" if isinstance(model, FingerprintEncoder) else "decoder"
    payload = {"format": FORMAT[kind], "resolution": model.resolution, "fingerprint_length": model.fingerprint_length,
               **({"luma": True} if kind == "encoder" and model.luma else {}),
               **({"frame_psnr": float(model.frame_psnr)} if model.frame_psnr else {}),
               "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
               **(extra or {})}
    return save_torch_atomic(path, payload)


def _shape_info(kind: str, sd: dict, path: Path) -> tuple[Optional[int], int]:
    """(resolution or None, fingerprint length) from a plain state dict's shapes."""
    try:
        if kind == "encoder":
            return None, int(sd["secret_dense.weight"].shape[1])
        inner = int(sd["dense.0.weight"].shape[1])
        side = math.isqrt(inner // 128)
        if side * side * 128 != inner:
            raise KeyError
        return side * 32, int(sd["dense.2.weight"].shape[0])
    except (KeyError, IndexError, AttributeError):
        raise DIFError(f"{shown(path)} is not a fingerprint {kind} (unexpected weights)") from None


def load_model(path: str | Path, kind: str, resolution: Optional[int] = None, fingerprint_length: Optional[int] = None,
               device: str | torch.device = "cpu") -> FingerprintEncoder | FingerprintDecoder:
    """A fingerprint encoder or decoder from a weights file. ``resolution`` and ``fingerprint_length``
    default to the file's own; a different value is a DIFError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise DIFError(f"{kind} weights not found: {shown(path)}")
    payload = load_weights_only(path, f"fingerprint {kind}")
    if not isinstance(payload, dict):
        raise DIFError(f"{shown(path)} is not a fingerprint {kind} file")
    fmt = payload.get("format")
    if isinstance(fmt, str) and fmt.startswith("dif-artificial-"):
        if fmt != FORMAT[kind]:
            other = "encoder" if kind == "decoder" else "decoder"
            raise DIFError(f"{shown(path)} is a fingerprint {other}, not a {kind}")
        sd, res, n = payload.get("state_dict"), payload.get("resolution"), payload.get("fingerprint_length")
        luma, frame_psnr = payload.get("luma", False), payload.get("frame_psnr")
        if not isinstance(sd, dict) or not isinstance(res, int) or not isinstance(n, int) or not isinstance(luma, bool) \
                or not (frame_psnr is None or (isinstance(frame_psnr, float) and 20 <= frame_psnr <= 80)):
            raise DIFError(f"{shown(path)}: a damaged fingerprint {kind} file")
    else:  # their plain state dict
        sd, luma, frame_psnr = payload, False, None
        res, n = _shape_info(kind, sd, path)
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DIFError(f"{shown(path)}: a state dict is not a dict of tensors")
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in sd.values()):
        raise DIFError(f"{shown(path)}: weights hold NaN or infinite values")
    check_length(n, f"the fingerprint length recorded in {shown(path)}")  # before any network is built
    if res is not None:
        check_resolution(res, f"the resolution recorded in {shown(path)}")
    if res is None:
        if resolution is None:
            raise DIFError(f"{shown(path)} does not record its resolution: give --image_resolution")
        res = resolution
    elif resolution is not None and resolution != res:
        raise DIFError(f"--image_resolution {resolution} does not match the {kind} in {shown(path)} ({res} px)")
    if fingerprint_length is not None and fingerprint_length != n:
        raise DIFError(f"--fingerprint_length {fingerprint_length} does not match the {kind} in {shown(path)} "
                       f"({n} bits)")
    check_resolution(res, f"the resolution of {shown(path)}")
    cls = FingerprintEncoder if kind == "encoder" else FingerprintDecoder
    with torch.device("meta"):  # the expected shapes, with nothing allocated
        expected = {k: tuple(v.shape) for k, v in cls(res, n).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in sd.items()}
    if found != expected:
        wrong = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
        raise DIFError(f"{shown(path)}: weights do not fit a {res} px, {n}-bit {kind} (first difference: "
                       f"{shown(wrong[0])[:80]})")
    model = cls(res, n, luma) if kind == "encoder" else cls(res, n)
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        raise DIFError(f"{shown(path)}: weights do not fit a {res} px, {n}-bit {kind} ({first_line(exc, 120)})") from None
    model.frame_psnr = frame_psnr
    return model.to(device).eval()
