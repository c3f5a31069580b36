"""Tiles: a whole image scored (and trained on) as crop-sized tiles on the centre crop's phase."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_dataset, smooth_image, write_png
from dif.cli import run_main
from dif.crop import center_crop, crop_offsets, tile_offsets, tile_stack
from dif.data import training_residuals
from dif.extractors import build_extractor
from dif.fingerprint import TrainState
from dif.methods.dif import DIFMethod


@pytest.mark.parametrize("H,W", [(256, 256), (300, 271), (512, 512), (600, 831), (1024, 1024), (1100, 700)])
def test_tiles_keep_the_centre_crops_phase_and_do_not_overlap(H, W):
    h = w = 256
    tops = tile_offsets(H, W, h, w)
    top_c, left_c = crop_offsets(H, W, h, w)
    assert len(tops) == max(1, H // h) * max(1, W // w) or len(tops) >= 1
    for t, l in tops:
        assert (t - top_c) % 16 == 0 and (l - left_c) % 16 == 0
        assert 0 <= t <= H - h and 0 <= l <= W - w
    rows, cols = sorted({t for t, _ in tops}), sorted({l for _, l in tops})
    assert all(b - a >= h for a, b in zip(rows, rows[1:])) and all(b - a >= w for a, b in zip(cols, cols[1:]))
    if H < 2 * h and W < 2 * w:  # one tile: exactly the centre crop
        assert tops == [(top_c, left_c)]
    if H == W == 1024:
        assert len(tops) == 16  # the whole image


def test_tile_limit_keeps_the_tiles_nearest_the_centre_and_stacks_them():
    img = torch.rand(3, 1024, 1024)
    four = tile_offsets(1024, 1024, 256, 256, limit=4)
    assert sorted(four) == [(256, 256), (256, 512), (512, 256), (512, 512)]
    st = tile_stack(img, (256, 256), limit=4)
    assert st.shape == (4, 3, 256, 256)
    assert torch.equal(st[0], img[:, four[0][0]:four[0][0] + 256, four[0][1]:four[0][1] + 256])
    small = torch.rand(3, 200, 300)
    assert tile_stack(small, (256, 256), allow_smaller=True).shape == (1, 3, 200, 256)


def _pattern(h, w, period=16, amp=0.03, seed=5):
    """A periodic trace anchored at the image's origin (as a generator's up-sampling grid is)."""
    rng = np.random.default_rng(seed)
    cell = rng.normal(size=(period, period, 3))
    cell -= cell.mean()
    return amp * np.tile(cell, (h // period + 1, w // period + 1, 1))[:h, :w]


def _separation(method, real, fake):
    r, f = method.score(real), method.score(fake)
    return (f.mean() - r.mean()) / np.sqrt(0.5 * (r.var() + f.var()))


def test_a_planted_trace_is_found_with_more_confidence_as_tiles_are_added():
    """The fingerprint is the trace's centre crop; images are 271 x 271 px (the centre crop starts
    at 103, not on the 16 px grid) and 64 px crops: 4 x 4 tiles, each on the trace's phase."""
    rng = np.random.default_rng(0)
    H = W = 271
    trace = _pattern(H, W)
    top, left = crop_offsets(H, W, 64, 64)
    fp = torch.from_numpy(trace[top:top + 64, left:left + 64]).permute(2, 0, 1).unsqueeze(0).float()
    state = TrainState(fingerprint=fp, train_real=[0.0] * 20, train_fake=[0.05] * 20, epoch=1)
    method = DIFMethod.from_state(state, "highpass")
    real = [torch.from_numpy(smooth_image(rng, H, W) + rng.normal(0, 0.03, (H, W, 3))).permute(2, 0, 1).float()
            for _ in range(12)]
    fake = [torch.from_numpy(smooth_image(rng, H, W) + rng.normal(0, 0.03, (H, W, 3)) + trace).permute(2, 0, 1).float()
            for _ in range(12)]
    seps = {}
    for t in (1, 4, 0):
        method.tiles = t
        seps[t] = _separation(method, real, fake)
    assert seps[1] > 0 and seps[4] > 1.5 * seps[1] and seps[0] > 2.5 * seps[1], seps
    # off the phase (tiles shifted by 8 px), the same trace is not found
    method.tiles = 1
    shifted = [x[:, 8:, 8:] for x in fake]
    assert _separation(method, real, shifted) < 0.5 * seps[1]


def test_training_residuals_group_every_tile_with_its_image(tmp_path):
    data = make_dataset(tmp_path / "d", n=4, size=128)
    paths = sorted((data / "0_real").iterdir()) + sorted((data / "1_fake").iterdir())
    labels = [0] * 4 + [1] * 4
    ext = build_extractor("highpass", "cpu")
    ts = training_residuals(paths, labels, ext, (64, 64), augment=1, tiles=0, seed=1)
    assert ts.units == 16 and len(ts.cache.labels) == 16 * 4
    assert ts.clean.sum() == 32 and ts.groups[:4].tolist() == [0, 0, 0, 0]
    assert np.bincount(ts.groups).tolist() == [8] * 8  # 4 tiles of the image + 4 of its copy


def test_train_and_eval_with_tiles(tmp_path, scripts, capsys):
    data = make_dataset(tmp_path / "d", n=6, size=128)
    base = ["--epochs", "3", "--crop", "64", "--batch", "8", "--augment", "0", "--extractor", "highpass", "--quiet",
            "--checkpoint-every", "3"]
    assert run_main(scripts.train.main, [str(data), str(tmp_path / "one"), *base]) == 0
    assert run_main(scripts.train.main, [str(data), str(tmp_path / "all"), *base, "--tiles", "0"]) == 0
    cfg = json.loads((tmp_path / "all" / "config.json").read_text())
    assert cfg["tiles"] == 0 and cfg["tile_grid"] == 16
    one = torch.load(tmp_path / "one" / "chk_3.pt", weights_only=False)
    allt = torch.load(tmp_path / "all" / "chk_3.pt", weights_only=False)
    # an epoch counts images, not tiles: as many steps with 4 tiles per image as with one
    assert len(one["Loss"]) == len(allt["Loss"]) == 3 * 2  # 12 images, batch 8: 2 steps an epoch
    capsys.readouterr()
    out = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(tmp_path / "all"), str(data), "--json", str(out), "--quiet"]) == 0
    assert "tiles all" in capsys.readouterr().out
    assert run_main(scripts.eval.main, [str(tmp_path / "all"), str(data), "--tiles", "1", "--quiet"]) == 0
    assert "| tiles" not in capsys.readouterr().out.split("\n")[0]
    assert run_main(scripts.eval.main, [str(tmp_path / "all"), str(data), "--tiles", "-1", "--quiet"]) == 2


def test_the_large_image_set_with_a_coarser_trace(tmp_path, shared_data):
    """benchmarks/recipes.py lossless-set --ae-ups 3: every image cut to a multiple of 8 px (the
    period of three up-samplings), both splits and classes filled, the autoencoder's settings
    recorded; a second run into the same folder is refused in one line without --overwrite."""
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DIF_SHARED_DATA=str(shared_data))
    cmd = [sys.executable, str(root / "benchmarks" / "recipes.py"), "lossless-set", str(tmp_path / "o"), "--ae-steps",
           "2", "--ae-ups", "3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    rec = json.loads((tmp_path / "o" / "set.json").read_text())
    assert rec["ae_ups"] == 3 and rec["ae_steps"] == 2
    assert set(rec["counts"]) == {f"{s}/{c}" for s in ("train", "test") for c in ("0_real", "1_fake")}
    for f in (tmp_path / "o").rglob("*.png"):
        w, h = Image.open(f).size
        assert w % 8 == 0 and h % 8 == 0, f
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "--overwrite" in again.stderr
