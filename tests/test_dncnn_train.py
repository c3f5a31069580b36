import json

import numpy as np
import pytest
import torch

from dif.cli import run_main
from dif.denoiser import load_dncnn
from dif.dncnn_train import DnCNNTrainConfig, main, sample_batch
from conftest import make_dataset, write_png


def test_patches_noise_levels_and_determinism():
    imgs = [torch.rand(3, 50, 60), torch.rand(3, 45, 45)]
    cfg = DnCNNTrainConfig(patch=16, batch=64, sigma_max=25)
    a = sample_batch(imgs, cfg, np.random.default_rng(1))
    b = sample_batch(imgs, cfg, np.random.default_rng(1))
    assert a[0].shape == (64, 3, 16, 16) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    sig = a[1].flatten(1).std(1)
    assert sig.max() < 35 / 255 and sig.min() < 5 / 255  # levels spread over [0, 25]/255


def test_train_command_writes_weights_card_and_mean(tmp_path, capsys):
    for i in range(3):
        write_png(tmp_path / "photos" / f"{i}.png", np.random.default_rng(i).uniform(0.2, 0.8, (72, 80, 3)))
        write_png(tmp_path / "val" / f"{i}.png", np.random.default_rng(10 + i).uniform(0.2, 0.8, (64, 64, 3)))
    out = tmp_path / "dn.pt"
    rc = main([str(tmp_path / "photos"), str(out), "--val", str(tmp_path / "val"), "--layers", "3", "--features", "8",
               "--patch", "16", "--batch", "4", "--steps", "5", "--crop", "64", "--quiet"])
    assert rc == 0
    net, mean, meta = load_dncnn(out)
    assert net.layers == 3 and mean.shape == (3, 64, 64) and meta["run"]["steps"] == 5
    assert set(meta["psnr"]) == {"15", "25"}
    card = out.with_suffix(".md").read_text()
    assert "5 steps" in card and "| 15 |" in card
    assert main([str(tmp_path / "nowhere"), str(out)]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["wavelet", "wavelet-dwt", "highpass:1", "dncnn:PATH", "dncnn"])
def test_each_denoiser_end_to_end(tmp_path, spec, scripts):
    data = make_dataset(tmp_path / "d", n=3, size=48)
    if spec == "dncnn:PATH":
        from dif.denoiser import DnCNN, save_dncnn

        torch.manual_seed(0)
        save_dncnn(tmp_path / "w.pt", DnCNN(layers=3, features=8), torch.zeros(3, 32, 32))
        spec = f"dncnn:{tmp_path / 'w.pt'}"
    out = tmp_path / "c"
    assert run_main(scripts.train.main, [str(data), str(out), "--epochs", "2", "--crop", "32", "--quiet",
                                         "--augment", "0", "--denoiser", spec]) == 0
    assert json.loads((out / "config.json").read_text())["extractor"].split(":")[0] == spec.split(":")[0]
    j = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(out), str(data), "--json", str(j), "--quiet"]) == 0
    assert json.loads(j.read_text())["extractor"].split(":")[0] == spec.split(":")[0]
