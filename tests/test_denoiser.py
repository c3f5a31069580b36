import pytest
import torch

from dif.denoiser import (DnCNN, DnCNNExtractor, HighPassExtractor, WaveletExtractor, build_extractor, load_dncnn,
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
    with pytest.raises(DIFError, match="cannot read"):
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
    assert build_extractor(None).spec == "wavelet:5"
    assert build_extractor("wavelet-dwt").spec == "wavelet-dwt:5"
    assert build_extractor("highpass:2").spec == "highpass:2"
    for bad, msg in (("nope", "unknown denoiser"), ("dncnn", "needs a weights file"),
                     ("highpass:x", "bad highpass"), ("highpass:-1", "positive")):
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

    from dif.denoiser import load_authors_dncnn

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
