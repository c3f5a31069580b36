"""Shared fixtures: tiny synthetic real/fake data sets and the path to ../shared/data."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def periodic_pattern(h: int, w: int, period: int = 4, amp: float = 0.04) -> np.ndarray:
    """A fixed periodic high-frequency pattern (the 'generator fingerprint' of the fake class)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = ((xx % period) < period // 2).astype(np.float64) * 2 - 1
    base = base * (((yy % period) < period // 2) * 2 - 1)
    return amp * np.repeat(base[..., None], 3, axis=2)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour image with mild sensor-like noise, values in [0.15, 0.85]."""
    coarse = rng.uniform(0.2, 0.8, size=(h // 8 + 1, w // 8 + 1, 3))
    img = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]
    img = img + rng.normal(0, 0.01, size=img.shape)
    return np.clip(img, 0.15, 0.85)


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def make_dataset(root: Path, n: int = 6, size: int = 64, seed: int = 0, fake_ext: str = ".png") -> Path:
    """root/0_real and root/1_fake with ``n`` images each; fakes carry a periodic pattern."""
    rng = np.random.default_rng(seed)
    pat = periodic_pattern(size, size)
    for i in range(n):
        write_png(root / "0_real" / f"real_{i}.png", smooth_image(rng, size, size))
        write_png(root / "1_fake" / f"fake_{i}{fake_ext}", smooth_image(rng, size, size) + pat)
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """6 real + 6 fake 64x64 PNGs (fakes with a period-4 pattern)."""
    return make_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $DIF_SHARED_DATA). Missing: a failure under CI=true, else a skip."""
    env = os.environ.get("DIF_SHARED_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    if not (path / "dif_official").is_dir():
        msg = f"shared data not found at {path} (set DIF_SHARED_DATA)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def load_script(name: str):
    """One of the top-level scripts (train_dif, eval_dif, blank_experiment), installed as modules."""
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def scripts():
    class S:
        train = load_script("train_dif")
        eval = load_script("eval_dif")
        blank = load_script("blank_experiment")
    return S
