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
    for ext in (HighPassExtractor(1.0), WaveletExtractor(5.0)):
        r0 = ext(flat)
        assert r0.shape == flat.shape and r0.dtype == torch.float32
        assert r0.abs().max() < 1e-5  # nothing to remove from a flat image
        r = ext(noisy)
        assert torch.equal(r, ext(noisy))  # deterministic
        noise = noisy - flat
        assert torch.corrcoef(torch.stack([r.flatten(), noise.flatten()]))[0, 1] > 0.7


def test_build_extractor_specs():
    assert build_extractor(None).spec == "wavelet:5"
    assert build_extractor("highpass:2").spec == "highpass:2"
    for bad, msg in (("nope", "unknown denoiser"), ("dncnn", "needs a weights file"),
                     ("highpass:x", "bad highpass"), ("highpass:-1", "positive")):
        with pytest.raises(DIFError, match=msg):
            build_extractor(bad)
