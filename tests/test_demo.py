"""The quick start at a tiny size: ``python -m dif.demo`` makes a labelled set with no download
(seeded: the same command, the same bytes), ``train_dif.py`` trains on it with the defaults but for
the size, ``eval_dif.py`` evaluates it; bad input is one line and exit 2 with nothing written; and
every installed command of pyproject.toml runs, with its own name in ``--help``."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from dif.cli import run_main
from dif.demo import main as demo_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--size", "64", "--train", "6", "--test", "4", "--steps", "30", "--patch", "32", "--quiet"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert run_main(demo_main, [str(out), *TINY]) == 0
    return out


def test_the_demo_set_is_labelled_split_and_seeded(demo, tmp_path):
    from PIL import Image

    for split, n in (("train", 6), ("test", 4)):
        for cls in ("0_real", "1_fake"):
            imgs = sorted((demo / split / cls).glob("*.png"))
            assert len(imgs) == n
            with Image.open(imgs[0]) as im:
                assert im.size == (64, 64) and im.format == "PNG"  # both classes PNG: no format shortcut
    info = json.loads((demo / "demo.json").read_text())
    assert [s["name"] for s in info["sources"]] == ["grace_hopper", "china", "flower"]
    assert info["loss_last50"] < info["loss_first"]  # the generator learned something
    again = tmp_path / "again"
    assert run_main(demo_main, [str(again), *TINY]) == 0
    assert files(again) == files(demo)  # the same command makes the same files
    other = tmp_path / "other"
    assert run_main(demo_main, [str(other), *TINY, "--seed", "1"]) == 0
    assert files(other)["train/0_real/real_0000.png"] != files(demo)["train/0_real/real_0000.png"]


def test_train_and_eval_on_the_demo(demo, tmp_path, scripts, capsys):
    check = tmp_path / "check"
    assert run_main(scripts.train.main, [str(demo / "train"), str(check), "--crop", "64", "--epochs", "3",
                                         "--quiet"]) == 0  # otherwise the defaults: --extractor auto, --augment 2
    assert "--extractor auto chose" in capsys.readouterr().out
    js = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(check), str(demo / "test"), "--json", str(js), "--plots",
                                        str(check / "plots"), "--quiet"]) == 0
    m = json.loads(js.read_text())
    assert m["n_real"] == 4 and m["n_fake"] == 4 and 0 <= m["accuracy"] <= 1
    assert (check / "plots").is_dir() and any((check / "plots").glob("*.png"))


def test_bad_input_is_one_line_and_writes_nothing(demo, tmp_path, capsys):
    before = files(demo)
    assert run_main(demo_main, [str(demo), *TINY]) == 2  # an existing non-empty DIR
    assert "--overwrite" in capsys.readouterr().err
    assert files(demo) == before
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert run_main(demo_main, [str(busy), *TINY, "--overwrite"]) == 2  # never deletes a user's files
    assert "notes.txt" in capsys.readouterr().err and (busy / "notes.txt").read_text() == "mine"
    for argv, msg in (([str(tmp_path / "a"), "--size", "40"], "multiple of 16"),
                      ([str(tmp_path / "a"), "--size", "512"], "--size"),
                      ([str(tmp_path / "a"), "--train", "1"], "--train"),
                      ([str(tmp_path / "a"), "--seed", "-1"], "--seed"),
                      ([str(tmp_path / "a"), "--ups", "5"], "--ups"),
                      ([str(tmp_path / "a"), "--zoom", "0"], "--zoom"),
                      ([str(tmp_path / "a"), "--zoom", "0.25", "--size", "96"], "at --zoom 0.25"),
                      (["/sys/demo_here", *TINY], "not writable")):
        assert run_main(demo_main, argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "a").exists()
    assert run_main(demo_main, [str(demo), *TINY, "--overwrite"]) == 0  # replaced whole, once complete
    assert files(demo) == before


def test_every_installed_command_runs_under_its_own_name():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"dif-demo", "dif-train", "dif-eval", "dif-gray", "deepfeaturex", "artificial-fingerprints"} <= set(scripts)
    folder = Path(sysconfig.get_path("scripts"))
    for name, target in scripts.items():
        module, func = target.split(":")
        import importlib

        assert callable(getattr(importlib.import_module(module), func)), target
        exe = folder / name
        assert exe.is_file(), f"{name} is not installed: python3 -m pip install -r requirements.txt"
        p = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.startswith(f"usage: {name}"), (name, p.stdout[:200], p.stderr[-500:])
    p = subprocess.run([str(folder / "dif-train"), "/nowhere", str(ROOT / "no_such_check")], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_the_demo_autoencoder_keeps_the_size_and_its_trace_period_follows_its_up_samplings():
    """ImageAutoencoder(ups=k) maps an image to one of the same size (cut to a multiple of 2**k),
    and a constant image comes back with a pattern whose period is 2**k: each kernel-3 stride-2
    up-sampling adds its uneven overlap on a grid twice as coarse. Outside 1-4: one-line error."""
    import torch

    from dif.errors import DIFError
    from dif.generators import ImageAutoencoder

    for ups in (1, 2, 3):
        torch.manual_seed(0)
        net = ImageAutoencoder(8, ups).eval()
        with torch.no_grad():
            y = net(torch.full((1, 3, 130, 130), 0.5))
        m = 2 ** ups
        assert y.shape[-1] == 130 // m * m
        inner = y[..., 32:-32, 32:-32]  # beyond the reach of the zero-padded border
        assert torch.allclose(inner[..., :-m, :], inner[..., m:, :], atol=1e-6)  # period 2**k down the rows
        assert not torch.allclose(inner[..., :-m // 2, :], inner[..., m // 2:, :], atol=1e-5)  # but not half of it
    with pytest.raises(DIFError, match="1-4"):
        ImageAutoencoder(8, 5)


def test_zoom_resizes_the_photos_before_they_are_cut(tmp_path):
    """--zoom scales the bundled photos first, so --size may go up to the smallest half at that zoom
    (a quarter of 300 px here); the record says which zoom made the set."""
    from PIL import Image

    out = tmp_path / "z"
    assert run_main(demo_main, [str(out), "--zoom", "0.25", "--size", "64", "--train", "2", "--test", "2",
                                "--steps", "2", "--patch", "32", "--quiet"]) == 0
    with Image.open(sorted((out / "train" / "1_fake").glob("*.png"))[0]) as im:
        assert im.size == (64, 64)
    assert json.loads((out / "demo.json").read_text())["config"]["zoom"] == 0.25
