import pytest
import torch

from dif.extractors import (DnCNN, DnCNNExtractor, HighPassExtractor, WaveletExtractor, build_extractor, load_dncnn,
                          save_dncnn)
from dif.errors import DIFError


def test_dncnn_has_the_authors_layout():
    net = DnCNN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(bns) == 15
    assert all(c.bias is None for c in convs)
    assert convs[0].in_channels == 3 and convs[0].out_channels == 64 and convs[-1].out_channels == 3
    keys = set(net.state_dict())
    assert {"dncnn.0.weight", "dncnn.2.weight", "dncnn.3.running_mean", "dncnn.47.weight"} <= keys


def test_dncnn_extractor_pads_and_subtracts_mean_only_when_sizes_match():
    torch.manual_seed(0)
    net = DnCNN(layers=3, features=8)
    mean = torch.full((3, 16, 16), 0.25)
    ext = DnCNNExtractor(net, mean)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        raw = net(torch.nn.functional.pad(x, (10, 10, 10, 10)))[..., 10:-10, 10:-10]
    torch.testing.assert_close(ext(x), raw - 0.25)
    y = torch.rand(1, 3, 24, 16)
    with torch.no_grad():
        raw_y = net(torch.nn.functional.pad(y, (10, 10, 10, 10)))[..., 10:-10, 10:-10]
    torch.testing.assert_close(ext(y), raw_y)  # size differs: no subtraction
    assert not any(p.requires_grad for p in ext.parameters())
    ext.train()
    assert not ext.training


def test_dncnn_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    net = DnCNN(layers=4, features=8)
    mean = torch.rand(3, 8, 8)
    path = tmp_path / "w.pt"
    save_dncnn(path, net, mean, {"steps": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "dif-dncnn-v1"
    net2, mean2, meta = load_dncnn(path)
    assert meta == {"steps": 3} and torch.equal(mean2, mean)
    x = torch.rand(1, 3, 8, 8)
    net.eval(), net2.eval()
    torch.testing.assert_close(net(x), net2(x))
    ext = build_extractor(f"dncnn:{path}")
    assert ext.spec == f"dncnn:{path}"
    assert ext(x).shape == x.shape


def test_bad_weights_files(tmp_path):
    with pytest.raises(DIFError, match="not found"):
        load_dncnn(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DIFError, match="not a readable"):
        load_dncnn(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(DIFError, match="not a DIF DnCNN"):
        load_dncnn(tmp_path / "other.pt")


def test_highpass_and_wavelet_residuals():
    g = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 32, 32), 0.4)
    noisy = flat + 0.02 * torch.randn(1, 3, 32, 32, generator=g)
    for ext in (HighPassExtractor(1.0), WaveletExtractor(5.0), WaveletExtractor(5.0, stationary=False)):
        r0 = ext(flat)
        assert r0.shape == flat.shape and r0.dtype == torch.float32
        assert r0.abs().max() < 1e-5  # nothing to remove from a flat image
        r = ext(noisy)
        assert torch.equal(r, ext(noisy))  # deterministic
        noise = noisy - flat
        assert torch.corrcoef(torch.stack([r.flatten(), noise.flatten()]))[0, 1] > 0.7


def test_build_extractor_specs():
    assert build_extractor(None).spec == "dncnn"
    assert build_extractor("wavelet-dwt").spec == "wavelet-dwt:5"
    assert build_extractor("highpass:2").spec == "highpass:2"
    for bad, msg in (("nope", "unknown denoiser"), ("dncnn:/no/such/weights.pt", "not found"),
                     ("highpass:x", "bad highpass"), ("highpass:-1", "bad highpass sigma"), ("highpass:inf", "bad highpass sigma"),
                     ("highpass:1e12", r"\(0, 64\]"), ("wavelet:nan", "bad wavelet sigma")):
        with pytest.raises(DIFError, match=msg):
            build_extractor(bad)


def test_stationary_wavelet_and_highpass_are_shift_equivariant():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g)
    xs = torch.roll(x, (1, 1), (-2, -1))

    def agreement(ext):
        a = torch.roll(ext(x), (1, 1), (-2, -1))[..., 12:-12, 12:-12].flatten()
        b = ext(xs)[..., 12:-12, 12:-12].flatten()
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    assert agreement(HighPassExtractor(1.0)) > 0.999
    assert agreement(WaveletExtractor(5.0)) > 0.99
    assert agreement(WaveletExtractor(5.0, stationary=False)) < 0.9  # the decimated transform is not


def _authors_style_file(path, evil_marker=None):
    """A file built the way the authors saved dncnn/chk_2000.pt: torch.save of a whole trainer
    object (classes dncnn.model.DnCNN and dncnn.trainer.TrainerDnCNN), optimizer and all."""
    import sys
    import types

    pkg, model_mod, trainer_mod = (types.ModuleType(n) for n in ("dncnn", "dncnn.model", "dncnn.trainer"))
    AuthorsDnCNN = type("DnCNN", (DnCNN,), {"__module__": "dncnn.model"})

    class TrainerDnCNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.device = torch.device("cpu")
            self.denoiser = AuthorsDnCNN(3, 5)
            self.optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=1e-3)
            self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, 0.998)
            self.loss_fun = torch.nn.MSELoss(reduction="sum")
            self.train_loss = [1.0, 0.5]

    TrainerDnCNN.__module__, TrainerDnCNN.__qualname__ = "dncnn.trainer", "TrainerDnCNN"
    model_mod.DnCNN, trainer_mod.TrainerDnCNN = AuthorsDnCNN, TrainerDnCNN
    saved = {k: sys.modules.get(k) for k in ("dncnn", "dncnn.model", "dncnn.trainer")}
    sys.modules.update({"dncnn": pkg, "dncnn.model": model_mod, "dncnn.trainer": trainer_mod})
    try:
        torch.manual_seed(0)
        trainer = TrainerDnCNN()
        if evil_marker is not None:
            import os

            class Evil:
                def __reduce__(self):
                    return (os.system, (f"touch {evil_marker}",))

            trainer.extra = Evil()
        torch.save(trainer, path)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return {k: v.clone() for k, v in trainer.denoiser.state_dict().items()}


def test_authors_checkpoint_loader_extracts_weights_without_running_code(tmp_path):
    import numpy as np

    from dif.extractors import load_authors_dncnn

    want = _authors_style_file(tmp_path / "chk_2000.pt", evil_marker=tmp_path / "pwned")
    net = load_authors_dncnn(tmp_path / "chk_2000.pt")
    assert net.layers == 5 and net.features == 64
    got = net.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert not (tmp_path / "pwned").exists()
    np.save(tmp_path / "clean_real.npy", np.full((16, 16, 3), 0.1))
    ext = build_extractor(f"authors:{tmp_path / 'chk_2000.pt'}:{tmp_path / 'clean_real.npy'}")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        net.eval()
        raw = net(torch.nn.functional.pad(x, (10,) * 4))[..., 10:-10, 10:-10]
    torch.testing.assert_close(ext(x), raw - 0.1)
    (tmp_path / "other.pt").write_bytes(b"nonsense")
    with pytest.raises(DIFError, match="cannot read"):
        load_authors_dncnn(tmp_path / "other.pt")
    torch.save({"a": 1}, tmp_path / "nodncnn.pt")
    with pytest.raises(DIFError, match="no DnCNN weights"):
        load_authors_dncnn(tmp_path / "nodncnn.pt")


def test_same_extractor_compares_what_makes_the_residual(tmp_path, monkeypatch):
    import dif.extractors as d
    from dif.extractors import dncnn as dmod

    assert d.same_extractor("wavelet", "wavelet:5") and d.same_extractor("highpass", "highpass:1.0")
    assert not d.same_extractor("wavelet", "wavelet-dwt") and not d.same_extractor("highpass:1", "highpass:2")
    torch.manual_seed(0)
    d.save_dncnn(tmp_path / "a.pt", d.DnCNN(layers=3, features=4))
    (tmp_path / "b.pt").write_bytes((tmp_path / "a.pt").read_bytes())
    torch.manual_seed(1)
    d.save_dncnn(tmp_path / "c.pt", d.DnCNN(layers=3, features=4))
    assert d.same_extractor(f"dncnn:{tmp_path / 'a.pt'}", f"dncnn:{tmp_path / 'b.pt'}")  # same bytes, other path
    assert not d.same_extractor(f"dncnn:{tmp_path / 'a.pt'}", f"dncnn:{tmp_path / 'c.pt'}")
    monkeypatch.setattr(dmod, "SHIPPED_DNCNN", tmp_path / "a.pt")
    assert d.same_extractor("dncnn", f"dncnn:{tmp_path / 'b.pt'}")
    assert d.build_extractor("dncnn").spec == "dncnn"


def test_missing_shipped_weights_say_what_to_do(tmp_path, monkeypatch):
    import dif.extractors as d
    from dif.extractors import dncnn as dmod

    monkeypatch.setattr(dmod, "SHIPPED_DNCNN", tmp_path / "none.pt")
    with pytest.raises(DIFError, match="dif.dncnn_train"):
        d.build_extractor("dncnn")


def test_delta_start_trains_a_deep_dncnn_off_the_plateau():
    """A plain 17-layer stack with He init predicts ~zero for hundreds of steps; the near-identity
    start must learn to denoise within a few steps (relative MSE well below 1)."""
    import numpy as np
    from dif.extractors import DnCNN
    from dif.dncnn_train import DnCNNTrainConfig, sample_batch

    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(6, 3, 96, 96, generator=g), 5, 1, 2)  # smooth "photos"
    imgs = [b for b in base]
    cfg = DnCNNTrainConfig(patch=24, batch=16, sigma_max=55)
    torch.manual_seed(0)
    net = DnCNN(3, 17, 16).train()
    assert torch.allclose(net.dncnn[2].weight[:, :, 1, 1].diagonal(), torch.ones(16), atol=0.3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    rel = []
    for _ in range(40):
        noisy, noise = sample_batch(imgs, cfg, rng)
        loss = torch.nn.functional.mse_loss(net(noisy), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rel.append(loss.item() / noise.pow(2).mean().item())
    assert np.mean(rel[-10:]) < 0.6, rel[-10:]


def test_shipped_dncnn_weights(shared_data):
    """The DnCNN in dif/weights/: safe to load, the authors' layout, a mean residual at 256,
    deterministic float32 residuals, and it really denoises a held-out LIVE1 photo."""
    import numpy as np
    import dif.extractors as d
    from dif.data import center_crop, list_images, load_image

    raw = torch.load(d.SHIPPED_DNCNN, weights_only=True)
    assert raw["format"] == "dif-dncnn-v1" and (raw["layers"], raw["features"], raw["channels"]) == (17, 64, 3)
    assert raw["mean_residual"].shape == (3, 256, 256) and raw["mean_residual"].abs().mean() < 0.02
    assert set(raw["meta"]["psnr"]) == {"15", "25"}
    ext = d.build_extractor("dncnn")
    assert ext.spec == "dncnn" and not any(p.requires_grad for p in ext.parameters())
    x = center_crop(load_image(list_images(shared_data / "natural" / "live1")[0]), (96, 96)).unsqueeze(0)
    r1, r2 = ext(x), ext(x.clone())
    assert r1.shape == x.shape and r1.dtype == torch.float32 and torch.equal(r1, r2)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g) * 25 / 255
    den = (x + noise) - ext(x + noise)  # 96 != 256: no mean subtraction, the plain DnCNN output
    gain = 10 * np.log10(noise.pow(2).mean().item() / (den - x).pow(2).mean().item())
    assert gain > 6, gain  # dB over the noisy input at sigma 25 (a random DnCNN makes it worse)
    # at the mean residual's size the mean is subtracted
    x256 = center_crop(load_image(list_images(shared_data / "natural" / "live1")[0]), (256, 256)).unsqueeze(0)
    assert torch.allclose(ext(x256), ext.net(torch.nn.functional.pad(x256, (10,) * 4))[..., 10:-10, 10:-10]
                          - raw["mean_residual"], atol=1e-5)


def test_channels_last_extractor_matches_the_plain_network():
    import copy

    torch.manual_seed(0)
    net = DnCNN(layers=5, features=16).eval()
    plain = copy.deepcopy(net)
    x = torch.rand(2, 3, 40, 44)
    ext = DnCNNExtractor(net, None)
    ref = plain(torch.nn.functional.pad(x, (10,) * 4))[..., 10:-10, 10:-10]
    out = ext(x)
    assert out.is_contiguous() and torch.allclose(out, ref, atol=1e-5)


def test_bf16_precision_folds_batchnorm_and_stays_close_to_fp32(tiny_data, tmp_path, scripts, capsys):
    """--extractor-precision folded: BatchNorm folded into the convolutions, fp32, the reference up to
    rounding; bf16: the same in bfloat16, within a few percent of fp32; recorded in the JSON."""
    import json

    import torch

    from dif.cli import run_main
    from dif.extractors import DnCNN, DnCNNExtractor
    from dif.extractors.dncnn import fold_batchnorm

    torch.manual_seed(0)
    net = DnCNN(layers=4, features=8)
    for m in net.modules():  # BatchNorm with statistics of its own, so that folding has work to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.allclose(fold_batchnorm(net.dncnn)(x), net(x), atol=1e-5)
    ext = DnCNNExtractor(net)
    ref = ext(x)
    fast = DnCNNExtractor(net).with_precision("bf16")
    assert ext.precision == "fp32" and fast.precision == "bf16"
    assert float((fast(x) - ref).norm() / ref.norm()) < 0.05
    assert all(q.dtype == torch.float32 for q in net.parameters())  # the bf16 copy left the reference alone
    folded = DnCNNExtractor(net).with_precision("folded")
    assert folded.precision == "folded" and float((folded(x) - ref).norm() / ref.norm()) < 1e-5
    assert folded.with_precision("fp32").fast is None
    check = tmp_path / "c"
    assert run_main(scripts.train.main, [str(tiny_data), str(check), "--epochs", "2", "--crop", "32", "--batch", "8",
                                         "--extractor", "dncnn", "--augment", "0", "--quiet"]) == 0
    auc = {}
    for precision in ("fp32", "folded", "bf16", None):
        js = tmp_path / f"{precision}.json"
        argv = [str(check), str(tiny_data), "--json", str(js), "--quiet"] + (["--extractor-precision", precision] if precision else [])
        assert run_main(scripts.eval.main, argv) == 0
        rep = json.loads(js.read_text())
        assert rep["precision"] == (precision or "folded")  # folded: evaluation's default
        auc[precision] = rep["auc"]
    assert auc["folded"] == auc["fp32"] == auc[None]
    capsys.readouterr()
    assert run_main(scripts.eval.main, [str(check), str(tiny_data), "--extractor-precision", "fp16"]) == 2
    assert "--extractor-precision" in capsys.readouterr().err


def test_shipped_jpeg_dncnn_is_a_named_extractor():
    """--extractor dncnn-jpeg: the shipped JPEG-trained weights, a residual of their own (not the
    plain DnCNN's), the same residuals as naming the file; an argument is a one-line error."""
    import torch

    from dif.errors import DIFError
    from dif.extractors import build_extractor, extractor_identity
    from dif.extractors.dncnn import SHIPPED_DNCNN_JPEG

    ext = build_extractor("dncnn-jpeg")
    assert ext.spec == "dncnn-jpeg" and ext.mean_residual is not None
    assert extractor_identity("dncnn-jpeg") == extractor_identity(f"dncnn:{SHIPPED_DNCNN_JPEG}")
    assert extractor_identity("dncnn-jpeg") != extractor_identity("dncnn")
    x = torch.rand(1, 3, 48, 48)
    assert not torch.allclose(ext(x), build_extractor("dncnn")(x))
    with pytest.raises(DIFError, match="no argument"):
        build_extractor("dncnn-jpeg:3")
