import json

import numpy as np
import pytest
import torch

from dif.cli import run_main
from dif.extractors import load_dncnn
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
        from dif.extractors import DnCNN, save_dncnn

        torch.manual_seed(0)
        save_dncnn(tmp_path / "w.pt", DnCNN(layers=3, features=8), torch.zeros(3, 32, 32))
        spec = f"dncnn:{tmp_path / 'w.pt'}"
    out = tmp_path / "c"
    assert run_main(scripts.train.main, [str(data), str(out), "--epochs", "2", "--crop", "32", "--quiet",
                                         "--augment", "0", "--extractor", spec]) == 0
    assert json.loads((out / "config.json").read_text())["extractor"].split(":")[0] == spec.split(":")[0]
    j = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(out), str(data), "--json", str(j), "--quiet"]) == 0
    assert json.loads(j.read_text())["extractor"].split(":")[0] == spec.split(":")[0]


def _clean(batch):
    noisy, noise = batch
    return noisy - noise


def test_colour_share_and_tint():
    """Colour photos give cfg.colour_fraction of the patches; tinted grey patches get channels
    that differ but keep the grey patch's edges; tint 0 leaves grey patches grey."""
    from dif.dncnn_train import is_grey, split_colour

    g = torch.Generator().manual_seed(0)
    grey = [torch.rand(1, 40, 40, generator=g).clamp(0.05).expand(3, -1, -1).clone() for _ in range(2)]
    red = torch.zeros(3, 40, 40)
    red[0] = 0.9
    sg, sc = split_colour(grey + [red])
    assert len(sg) == 2 and len(sc) == 1 and sc[0] is red
    cfg = DnCNNTrainConfig(patch=16, batch=400, sigma_max=0, colour_fraction=0.25, tint=0.0)
    clean = _clean(sample_batch(grey, cfg, np.random.default_rng(0), [red]))
    from_red = (clean[:, 1:].abs().amax((1, 2, 3)) == 0)
    assert 0.18 < from_red.float().mean() < 0.32
    assert all(is_grey(c) for c in clean[~from_red])
    cfg = DnCNNTrainConfig(patch=16, batch=400, sigma_max=0, colour_fraction=0.0, tint=0.5)
    clean = _clean(sample_batch(grey, cfg, np.random.default_rng(0), [red]))
    tinted = torch.tensor([not is_grey(c) for c in clean])
    assert 0.4 < tinted.float().mean() < 0.6
    t = clean[tinted][0]
    assert (t[0] - t[1]).abs().max() > 0.01 and t.min() >= 0 and t.max() <= 1
    # each channel is a monotone function of the grey patch: the edges stay where they were
    for c in range(3):
        corr = np.corrcoef(t[c].flatten().numpy(), t.mean(0).flatten().numpy())[0, 1]
        assert corr > 0.95


def test_weight_average_tracks_the_mean_and_is_saved():
    from dif.extractors import DnCNN
    from dif.dncnn_train import WeightAverage

    torch.manual_seed(0)
    net = DnCNN(3, 3, 4)
    avg = WeightAverage(net, decay=0.5)
    start = net.dncnn[0].weight.detach().clone()
    for k in range(1, 41):
        with torch.no_grad():
            net.dncnn[0].weight.copy_(start + k)
        net.dncnn[3].num_batches_tracked.fill_(k)
        avg.update(net)
    got = avg.net.dncnn[0].weight
    # decay 0.5 reached after the warm-up: the average lags the last value by about one step
    assert torch.allclose(got, start + 39, atol=0.05)
    assert int(avg.net.dncnn[3].num_batches_tracked) == 40
    assert not any(p.requires_grad for p in avg.net.parameters())


def test_init_from_weights_and_layout_mismatch(tmp_path, capsys):
    from dif.extractors import DnCNN, save_dncnn

    for i in range(2):
        write_png(tmp_path / "photos" / f"{i}.png", np.random.default_rng(i).uniform(0.2, 0.8, (48, 48, 3)))
    torch.manual_seed(0)
    save_dncnn(tmp_path / "start.pt", DnCNN(3, 3, 8))
    common = [str(tmp_path / "photos"), str(tmp_path / "ft.pt"), "--patch", "16", "--batch", "2", "--steps", "2",
              "--crop", "32", "--quiet", "--features", "8", "--init", str(tmp_path / "start.pt")]
    assert main(common + ["--layers", "3"]) == 0
    _, _, meta = load_dncnn(tmp_path / "ft.pt")
    assert meta["init"].endswith("start.pt") and "started from" in (tmp_path / "ft.md").read_text()
    assert main(common + ["--layers", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 layers" in err[0]
    assert main(common[:-2] + ["--layers", "3", "--ema", "1.5"]) == 2


def test_jpeg_patches_carry_the_codec_error_on_any_block_grid():
    """--jpeg-fraction 1: every input is a JPEG save of the clean patch (sigma 0), so the target is
    exactly the codec's error, small but not zero; lower quality, larger error; fraction 0 draws
    exactly the batches of before (same rng use)."""
    g = torch.Generator().manual_seed(0)
    imgs = [torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=64, mode="bilinear")[0]]
    hi = sample_batch(imgs, DnCNNTrainConfig(patch=24, batch=16, sigma_max=1e-9, jpeg_fraction=1.0,
                                             jpeg_min_quality=95, jpeg_max_quality=95), np.random.default_rng(0))
    lo = sample_batch(imgs, DnCNNTrainConfig(patch=24, batch=16, sigma_max=1e-9, jpeg_fraction=1.0,
                                             jpeg_min_quality=30, jpeg_max_quality=30), np.random.default_rng(0))
    err_hi, err_lo = hi[1].pow(2).mean().sqrt(), lo[1].pow(2).mean().sqrt()
    assert 0 < err_hi < err_lo < 0.1
    assert torch.allclose(hi[0] - hi[1], lo[0] - lo[1], atol=1e-6)  # same clean patches, same draws
    plain = DnCNNTrainConfig(patch=24, batch=16, sigma_max=10)
    a = sample_batch(imgs, plain, np.random.default_rng(3))
    b = sample_batch(imgs, DnCNNTrainConfig(patch=24, batch=16, sigma_max=10, jpeg_fraction=0.0),
                     np.random.default_rng(3))
    assert torch.equal(a[0], b[0])


def test_distilled_student_learns_the_teachers_residual(tmp_path, capsys):
    """--teacher: the target is the teacher's output, not the noise. A teacher whose last
    convolution is zero answers 0 to everything, and so does a student started from it: the
    distillation loss is exactly 0, the denoising loss is the noise's power; the card and the
    file's meta name the teacher; a bad quality range is one line."""
    from dif.extractors import DnCNN, save_dncnn

    for i in range(2):
        write_png(tmp_path / "photos" / f"{i}.png", np.random.default_rng(i).uniform(0.2, 0.8, (48, 48, 3)))
    torch.manual_seed(0)
    net = DnCNN(layers=3, features=8)
    torch.nn.init.zeros_(net.dncnn[-1].weight)
    save_dncnn(tmp_path / "t.pt", net)
    common = [str(tmp_path / "photos"), "--layers", "3", "--features", "8", "--patch", "16", "--batch", "4",
              "--steps", "3", "--crop", "32", "--quiet", "--init", str(tmp_path / "t.pt"), "--ema", "0", "--lr", "1e-9"]
    assert main(common[:1] + [str(tmp_path / "s.pt")] + common[1:] + ["--teacher", str(tmp_path / "t.pt")]) == 0
    _, _, meta = load_dncnn(tmp_path / "s.pt")
    assert meta["run"]["final_loss"] == 0 and meta["teacher"]["path"] == str(tmp_path / "t.pt")
    assert "distilled" in (tmp_path / "s.md").read_text()
    assert main(common[:1] + [str(tmp_path / "n.pt")] + common[1:]) == 0
    assert load_dncnn(tmp_path / "n.pt")[2]["run"]["final_loss"] > 1e-6
    assert main(common[:1] + [str(tmp_path / "q.pt")] + common[1:] + ["--jpeg-fraction", "0.5", "--jpeg-min-quality",
                                                                      "90", "--jpeg-max-quality", "60"]) == 2
    assert "above" in capsys.readouterr().err and not (tmp_path / "q.pt").exists()
