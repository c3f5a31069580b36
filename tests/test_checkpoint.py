import os
import pickle

import pytest
import torch

from dif.checkpoint import (list_checkpoints, load_authors_hypers, load_checkpoint, load_config,
                            load_fingerprint_dir, save_checkpoint)
from dif.config import DIFConfig
from dif.errors import DIFError
from dif.fingerprint import TrainState

GENERATORS = ["biggan", "cyclegan", "dalle_2", "dalle_mini", "gaugan", "glide", "mj", "progan", "sd14", "sd21",
              "stargan", "stylegan", "stylegan2"]


def _state(epoch=3):
    return TrainState(torch.rand(1, 3, 16, 16), [0.1, 0.2], [0.3, 0.4], [1.0, 0.5], epoch)


def test_round_trip_in_the_authors_layout(tmp_path):
    p = save_checkpoint(tmp_path / "chk_3.pt", _state(), "wavelet:5")
    raw = torch.load(p, weights_only=True)
    assert set(raw) >= {"Fingerprint", "Train Real", "Train Fake", "Loss"}
    assert raw["Fingerprint"].shape == (1, 3, 16, 16)
    state, ext = load_checkpoint(p)
    assert ext == "wavelet:5" and state.epoch == 3 and state.train_fake == [0.3, 0.4]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_latest_and_named_epochs(tmp_path):
    for e in (5, 10, 100):
        save_checkpoint(tmp_path / f"chk_{e}.pt", _state(e), "highpass:1")
    DIFConfig(crop=16).save(tmp_path)
    assert list(list_checkpoints(tmp_path)) == [5, 10, 100]
    assert load_fingerprint_dir(tmp_path).state.epoch == 100
    lf = load_fingerprint_dir(tmp_path, 10)
    assert lf.state.epoch == 10 and lf.config.crop == 16
    with pytest.raises(DIFError, match="no checkpoint for epoch 7"):
        load_fingerprint_dir(tmp_path, 7)
    with pytest.raises(DIFError, match="no chk_"):
        load_fingerprint_dir(tmp_path / "..")


@pytest.mark.parametrize("content,msg", [(b"", "not a readable"), (b"garbage" * 10, "not a readable")])
def test_corrupt_checkpoints(tmp_path, content, msg):
    (tmp_path / "chk_0.pt").write_bytes(content)
    with pytest.raises(DIFError, match=msg):
        load_fingerprint_dir(tmp_path)


def test_wrong_kind_and_code_carrying_pickles(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "chk_0.pt")
    with pytest.raises(DIFError, match="no 'Fingerprint'"):
        load_checkpoint(tmp_path / "chk_0.pt")
    torch.save({"Fingerprint": torch.rand(2, 2)}, tmp_path / "chk_1.pt")
    with pytest.raises(DIFError, match="expected 1x3xHxW"):
        load_checkpoint(tmp_path / "chk_1.pt")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"Fingerprint": torch.rand(1, 3, 4, 4), "x": Evil()}, tmp_path / "chk_2.pt")
    with pytest.raises(DIFError, match="not a safe checkpoint") as e:
        load_checkpoint(tmp_path / "chk_2.pt")
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value)  # never the advice to load unsafely
    (tmp_path / "train_hypers.pt").write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(DIFError, match="cannot read .* safely"):
        load_authors_hypers(tmp_path / "train_hypers.pt")
    assert not marker.exists()


@pytest.mark.parametrize("gen", GENERATORS)
def test_every_official_fingerprint_loads(shared_data, gen):
    folder = shared_data / "dif_official" / "checks" / gen
    lf = load_fingerprint_dir(folder)
    assert lf.fingerprint.shape == (1, 3, 256, 256)
    assert lf.extractor is None and lf.state.epoch == 0
    assert len(lf.state.train_real) > 20


def test_official_hypers_load_safely(shared_data):
    h = load_authors_hypers(shared_data / "dif_official" / "checks" / "sd14" / "train_hypers.pt")
    assert h["Device"] == "cuda" and h["Crop Size"] == (256, 256) and h["Margin"] == 0.01
    cfg = load_config(shared_data / "dif_official" / "checks" / "sd14")
    assert (cfg.crop, cfg.width, cfg.depth, cfg.in_channels, cfg.batch_size) == (256, 32, 4, 16, 64)


def test_a_version_1_fingerprint_scores_exactly_as_it_did(tmp_path, scripts):
    """tests/data/v1_check: a fingerprint whose config.json predates the config version (and most of
    today's keys: no tiles, loss, augment_kinds, residual_precision), with the scores the code of its
    time gave it (expected_scores.json says how both were made). Read through the migration it scores
    the same images identically: the same correlations to the printed digit, the same verdicts, the
    same threshold, on the centre crop alone as then (tiles 1)."""
    import csv
    import json
    import shutil

    from conftest import ROOT, make_dataset
    from dif.cli import run_main

    src = ROOT / "tests" / "data" / "v1_check"
    check = tmp_path / "check"
    shutil.copytree(src, check, ignore=shutil.ignore_patterns("expected_scores.json"))
    expected = json.loads((src / "expected_scores.json").read_text())
    data = make_dataset(tmp_path / "data", n=4, size=80, seed=5)
    for score, extra in (("corr", []), ("shift", ["--centres", "cv"])):
        out, js = tmp_path / f"{score}.csv", tmp_path / f"{score}.json"
        assert run_main(scripts.eval.main, [str(check), str(data), "--csv", str(out), "--json", str(js), "--quiet",
                                            "--score", score, *extra]) == 0
        with open(out, newline="") as f:
            got = {r["path"].split("/")[-1]: [r["correlation"], r["prediction"]] for r in csv.DictReader(f)}
        want = expected[score]
        assert got == want["scores"]
        metrics = json.loads(js.read_text())
        assert metrics["threshold"] == want["threshold"] and metrics["tiles"] == want["tiles"] == 1
