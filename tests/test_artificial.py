"""Artificial GAN fingerprints: the networks, the bit arithmetic and the binomial test by hand, the
image-loss schedule, a tiny training run, the shipped pair (embed -> detect -> attribute, and as a
registered method), CPU loading of CUDA-saved weights, and the answers to bad input."""
import csv
import json
import math
from fractions import Fraction
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from dif.artificial import __main__ as art_cli
from dif.artificial.bits import (attribute, binomial_tail, bit_accuracy, bits_to_str, neg_log10, parse_bits,
                                 threshold_score)
from dif.artificial.models import FingerprintDecoder, FingerprintEncoder, check_resolution
from dif.artificial.train import ArtificialConfig, L2Schedule, fixed_crops, measure, psnr, ssim, train_pair
from dif.artificial.weights import DEFAULT_PAIR, load_model, save_model
from dif.cli import run_main
from dif.errors import DIFError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = DEFAULT_PAIR  # the default pair (whole photos at their own size), inside the package
SQUARE64 = ROOT / "checks" / "artificial" / "square64"  # the square 64 px protocol of the paper


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    return err[-1]


def cli(*args) -> int:
    return run_main(art_cli.main, [str(a) for a in args])


# ----------------------------------------------------------------------------- networks

def test_shapes_at_32_px():
    enc, dec = FingerprintEncoder(32, 100), FingerprintDecoder(32, 100)
    x, bits = torch.rand(2, 3, 32, 32), torch.randint(0, 2, (2, 100)).float()
    y = enc(bits, x)
    assert y.shape == (2, 3, 32, 32) and 0 <= y.min() and y.max() <= 1  # the image itself, through a sigmoid
    assert dec(y).shape == (2, 100)
    assert dec.dense[0].in_features == 1 * 1 * 128  # (32 / 32)^2 * 128
    assert FingerprintDecoder(128, 100).dense[0].in_features == 4 * 4 * 128


@pytest.mark.parametrize("res", [16, 48, 100, 0])
def test_resolution_must_be_a_power_of_two_of_at_least_32(res):
    with pytest.raises(DIFError, match="power of 2"):
        check_resolution(res)


# ----------------------------------------------------------------------------- bits and the test

def test_bit_accuracy_and_p_values_by_hand():
    t = np.array([[1, 0, 1, 1], [0, 0, 0, 0]])
    d = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    assert bit_accuracy(t, d).tolist() == [0.5, 1.0]
    assert binomial_tail(100, 100) == Fraction(1, 2 ** 100)
    assert binomial_tail(99, 100) == Fraction(101, 2 ** 100)
    assert binomial_tail(0, 100) == 1 and binomial_tail(101, 100) == 0
    assert binomial_tail(3, 4) == Fraction(5, 16)  # C(4,3) + C(4,4) = 5 of 16
    # P(X >= 60), X ~ Bin(100, 1/2) = 0.02844396682049039 (scipy.stats.binom.sf(59, 100, 0.5))
    assert float(binomial_tail(60, 100)) == pytest.approx(0.02844396682049039, rel=1e-12)
    assert neg_log10(Fraction(1, 2 ** 100)) == pytest.approx(100 * math.log10(2))
    assert neg_log10(Fraction(1, 2 ** 2000)) == pytest.approx(2000 * math.log10(2))  # no underflow to inf
    assert threshold_score(1e-6) == pytest.approx(6.0)
    assert bits_to_str(parse_bits("0110")) == "0110"
    with pytest.raises(DIFError, match="bits"):
        parse_bits("0110", 5)
    with pytest.raises(DIFError, match="0 and 1"):
        parse_bits("01a0")


def test_attribution_bonferroni_by_hand():
    users = [f"u{i}" for i in range(10)]
    db = np.zeros((10, 40), dtype=np.uint8)
    db[3] = 1
    # 34 of 40 bits match u3: P(X >= 34) = sum C(40, k), k >= 34, / 2^40 = 4.2e-6 (hand: 3,841,940 + ... )
    p34 = Fraction(sum(math.comb(40, k) for k in range(34, 41)), 2 ** 40)
    dec = np.ones((1, 40), dtype=np.uint8)
    dec[0, :6] = 0
    r = attribute(dec, users, db, alpha=1e-3)[0]
    assert (r.user, r.matching_bits) == ("u3", 34)
    assert r.p_value == pytest.approx(float(p34))
    assert r.neg_log10_p == pytest.approx(-math.log10(float(p34) * 10))  # Bonferroni over 10 users
    assert r.attributed  # 4.2e-5 <= 1e-3
    assert not attribute(dec, users, db, alpha=1e-5)[0].attributed  # 4.2e-5 > 1e-5
    # a string matching nobody beyond chance is never attributed
    rng = np.random.default_rng(0)
    assert not any(a.attributed for a in attribute(rng.integers(0, 2, (200, 40)), users, db, alpha=1e-6))
    with pytest.raises(DIFError, match="40-bit"):
        attribute(np.ones((1, 30), dtype=np.uint8), users, db)


def test_l2_schedule_starts_and_ends_where_their_recipe_says():
    s = L2Schedule(scale=10.0, wait=5, ramp=10)
    for step in range(12):
        s.observe(step, 0.5 if step < 10 else 0.95)  # first batch above 0.9: step 10
        assert s(step) == 0.0
    assert s.trigger == 10 and s.bounds() == (15, 25)
    s.observe(11, 0.1)  # the trigger is kept
    assert s.trigger == 10
    assert s(15) == 0.0 and s(16) == pytest.approx(1.0) and s(20) == pytest.approx(5.0)
    assert s(25) == pytest.approx(10.0) and s(10_000) == pytest.approx(10.0)
    assert L2Schedule(10.0, 5, 10)(10_000) == 0.0  # never triggered: never any image loss


def test_psnr_and_ssim_by_hand():
    a = torch.full((1, 3, 16, 16), 0.5)
    assert float(psnr(a, a + 0.1)) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert float(ssim(a, a)) == pytest.approx(1.0)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(ssim(x, x.flip(-1))) < 0.5


# ----------------------------------------------------------------------------- training

def test_saturation_adds_colour_and_leaves_default_crops_unchanged(shared_data):
    """--saturation scales each crop's colour away from its grey (more chroma, still in [0, 1], the
    same grey); at 0 the crops are those of a config without the field (the random stream of the
    shipped pairs' runs is kept)."""
    from dif.artificial.train import PhotoSet

    photos = sorted((shared_data / "natural" / "train400").glob("*.png"))[:5]
    base = ArtificialConfig(image_resolution=32, random_crop=True, crops_per_epoch=40, seed=3)
    plain = torch.stack([PhotoSet(photos, base)[i] for i in range(40)])
    again = torch.stack([PhotoSet(photos, ArtificialConfig(**{**base.__dict__, "saturation": 0.0}))[i] for i in range(40)])
    assert torch.equal(plain, again)
    vivid = torch.stack([PhotoSet(photos, ArtificialConfig(**{**base.__dict__, "saturation": 2.0}))[i] for i in range(40)])
    assert vivid.min() >= 0 and vivid.max() <= 1

    def chroma(x):
        return (x - x.mean(1, keepdim=True)).abs().mean()

    assert chroma(vivid) > 1.5 * chroma(plain) > 0
    assert (vivid.mean(1) - plain.mean(1)).abs().mean() < 0.01  # the grey kept (but where clamped)


def test_chroma_adds_colour_that_varies_across_the_crop(shared_data):
    """--chroma adds a colour field with no grey in it: the grey of each crop is kept (but where
    clamped), and the ratio of two channels, constant across a grey photo's crop under per-channel
    gains alone, now varies; at 0 the crops are unchanged."""
    from dif.artificial.train import PhotoSet

    photos = sorted((shared_data / "natural" / "train400").glob("*.png"))[:5]
    base = ArtificialConfig(image_resolution=32, random_crop=True, crops_per_epoch=40, seed=3)
    plain = torch.stack([PhotoSet(photos, base)[i] for i in range(40)])
    assert torch.equal(plain, torch.stack([PhotoSet(photos, ArtificialConfig(**{**base.__dict__, "chroma": 0.0}))[i]
                                           for i in range(40)]))
    coloured = torch.stack([PhotoSet(photos, ArtificialConfig(**{**base.__dict__, "chroma": 1.0}))[i] for i in range(40)])
    assert coloured.min() >= 0 and coloured.max() <= 1
    inside = ((coloured > 0) & (coloured < 1)).all(1)  # pixels where no channel was clamped
    assert inside.float().mean() > 0.5
    assert (coloured.mean(1) - plain.mean(1))[inside].abs().max() < 1e-5

    def ratio_spread(x):  # per crop: spread of R / G over pixels that are not dark
        r = x[:, 0] / x[:, 1].clamp_min(1e-6)
        return torch.stack([ri[gi > 0.1].std() for ri, gi in zip(r, x[:, 1])])

    assert float(ratio_spread(plain).nan_to_num(0).max()) < 1e-4
    assert float(ratio_spread(coloured).nan_to_num(0).median()) > 0.02


@pytest.fixture(scope="session")
def tiny_pair(shared_data, tmp_path_factory):
    """A 4-bit, 32 px pair trained for 150 steps on crops of 60 train400 photos."""
    photos = sorted((shared_data / "natural" / "train400").glob("*.png"))[:60]
    cfg = ArtificialConfig(image_resolution=32, fingerprint_length=4, batch_size=16, num_epochs=1, lr=1e-3,
                           random_crop=True, crops_per_epoch=16 * 150, l2_loss_await=30, l2_loss_ramp=50, seed=0)
    enc, dec, report = train_pair(photos, cfg, torch.device("cpu"))
    folder = tmp_path_factory.mktemp("tiny_pair")
    save_model(folder / "encoder.pth", enc)
    save_model(folder / "decoder.pth", dec)
    return folder, report


def test_tiny_training_run_learns_bits_on_held_out_crops(tiny_pair, shared_data):
    folder, report = tiny_pair
    held_out = fixed_crops(sorted((shared_data / "natural" / "bsd68").glob("*.png"))[:20], 32, 4, seed=1)
    enc, dec = load_model(folder / "encoder.pth", "encoder"), load_model(folder / "decoder.pth", "decoder")
    m = measure(enc, dec, held_out, seed=5)
    untrained = measure(FingerprintEncoder(32, 4), FingerprintDecoder(32, 4), held_out, seed=5)
    assert report["l2_schedule"] is not None  # a batch passed 0.9 and the image loss came on
    assert m["bit_accuracy"] > 0.85 > untrained["bit_accuracy"] + 0.2


# ----------------------------------------------------------------------------- weight files

def test_cuda_saved_weights_load_on_cpu(tmp_path):
    """Their code passed map_location to load_state_dict, so CUDA-saved decoders broke on CPU."""
    import torch.serialization as ser

    dec = FingerprintDecoder(32, 16)
    path = tmp_path / "their_decoder.pth"
    with mock.patch.object(ser, "location_tag", lambda storage: "cuda:0"):  # what a GPU run writes
        torch.save(dec.state_dict(), path)  # their format: a plain state dict
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # the file really is CUDA-tagged
    loaded = load_model(path, "decoder")
    assert (loaded.resolution, loaded.fingerprint_length) == (32, 16)  # read from the shapes
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x), dec.eval()(x))


def test_weight_files_record_resolution_and_length(tmp_path):
    save_model(tmp_path / "e.pth", FingerprintEncoder(64, 12))
    save_model(tmp_path / "d.pth", FingerprintDecoder(64, 12))
    enc = load_model(tmp_path / "e.pth", "encoder")
    assert (enc.resolution, enc.fingerprint_length) == (64, 12)
    with pytest.raises(DIFError, match="--image_resolution 32 does not match"):
        load_model(tmp_path / "d.pth", "decoder", resolution=32)
    with pytest.raises(DIFError, match="--fingerprint_length 100 does not match"):
        load_model(tmp_path / "e.pth", "encoder", fingerprint_length=100)
    with pytest.raises(DIFError, match="is a fingerprint encoder, not a decoder"):
        load_model(tmp_path / "e.pth", "decoder")
    torch.save(FingerprintEncoder(32, 12).state_dict(), tmp_path / "theirs_e.pth")
    with pytest.raises(DIFError, match="give --image_resolution"):
        load_model(tmp_path / "theirs_e.pth", "encoder")
    assert load_model(tmp_path / "theirs_e.pth", "encoder", resolution=32).resolution == 32


def test_a_luma_encoder_changes_the_grey_level_only_and_keeps_that_when_saved(tmp_path):
    """--luma: the change is the same in R, G and B (so Cb and Cr are the image's own, which JPEG's
    chroma subsampling cannot take away); the weights file records it, and a plain encoder stays
    free to change colour."""
    torch.manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(3, 3, 32, 32)  # away from 0 and 1: no clamping
    bits = torch.randint(0, 2, (3, 12)).float()
    enc = FingerprintEncoder(32, 12, luma=True).eval()
    d = enc(bits, x) - x
    assert d.abs().max() > 1e-3  # it changes the image
    assert torch.allclose(d[:, 0], d[:, 1], atol=1e-6) and torch.allclose(d[:, 1], d[:, 2], atol=1e-6)
    save_model(tmp_path / "e.pth", enc)
    back = load_model(tmp_path / "e.pth", "encoder")
    assert back.luma and torch.equal(back(bits, x), enc(bits, x))
    free = FingerprintEncoder(32, 12).eval()
    save_model(tmp_path / "f.pth", free)
    assert not load_model(tmp_path / "f.pth", "encoder").luma
    d = free(bits, x) - x
    assert (d[:, 0] - d[:, 1]).abs().max() > 1e-3


def test_cosine_learning_rate_decay_reaches_zero_over_the_epochs(tmp_path):
    from PIL import Image

    folder = tmp_path / "img"
    folder.mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "a.png")
    seen = []
    real_step = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    cfg = ArtificialConfig(image_resolution=32, fingerprint_length=8, batch_size=2, num_epochs=4, random_crop=True,
                           crops_per_epoch=4, lr=1e-3, lr_decay="cosine")
    with mock.patch.object(torch.optim.Adam, "step", spy):
        train_pair([folder / "a.png"], cfg, torch.device("cpu"))
    assert len(seen) == 8 and seen[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(seen, seen[1:]))  # falls at every step
    assert seen[4] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))  # half way: lr / 2
    seen.clear()
    with mock.patch.object(torch.optim.Adam, "step", spy):
        train_pair([folder / "a.png"], ArtificialConfig(**{**cfg.__dict__, "lr_decay": "none"}), torch.device("cpu"))
    assert seen == [1e-3] * 8  # theirs: constant


# ----------------------------------------------------------------------------- the commands, the shipped pair

def _photos(shared_data, tmp_path, n=6, name="photos"):
    """``n`` colour photos of live1 (never seen by the shipped pair's training)."""
    import shutil

    folder = tmp_path / name
    folder.mkdir()
    for p in sorted((shared_data / "natural" / "live1").glob("*.png"))[-n:]:
        shutil.copy(p, folder / p.name)
    return folder


@pytest.mark.parametrize("pair,min_psnr", [(DEFAULT_PAIR, 38), (SQUARE64, 31),
                                           (ROOT / "checks" / "artificial" / "robust32", 20),
                                           (ROOT / "checks" / "artificial" / "invisible64", 33)],
                         ids=["default", "square64", "robust32", "invisible64"])
def test_shipped_pair_embed_detect_attribute_round_trip(shared_data, tmp_path, capsys, pair, min_psnr):
    """The shipped pairs: the default fingerprints each photo whole at its own size (38.5 dB); the
    square pairs a centre square at their resolution (held-out crops: square64 34.2 dB, robust32
    23.8 dB / 0.931, invisible64 36.1 dB / 0.997)."""
    enc, dec = pair / "encoder.pth", pair / "decoder.pth"
    photos = _photos(shared_data, tmp_path)
    assert cli("embed", "--encoder_path", enc, "--data_dir", photos, "--output_dir", tmp_path / "emb", "--check", dec,
               "--quiet") == 0
    summary = json.loads((tmp_path / "emb" / "summary.json").read_text())
    lines = (tmp_path / "emb" / "embedded_fingerprints.txt").read_text().splitlines()
    assert len(lines) == 6 and summary["images"] == 6 and summary["psnr"] > min_psnr
    assert sorted(p.name for p in (tmp_path / "emb" / "fingerprinted_images").iterdir()) == \
        sorted(line.split()[0] for line in lines)
    assert len({line.split()[1] for line in lines}) == 6  # one fresh fingerprint per image (seed 42)
    if load_model(enc, "encoder").frame_psnr:  # each photo comes back at its own size
        from PIL import Image

        for p in photos.iterdir():
            assert Image.open(tmp_path / "emb" / "fingerprinted_images" / f"{p.stem}.png").size == Image.open(p).size

    assert cli("detect", "--decoder_path", dec, "--data_dir", tmp_path / "emb" / "fingerprinted_images",
               "--output_dir", tmp_path / "det", "--fingerprints", tmp_path / "emb" / "embedded_fingerprints.txt",
               "--quiet") == 0
    det = dict(line.split() for line in (tmp_path / "det" / "detected_fingerprints.txt").read_text().splitlines())
    emb = dict(line.split() for line in lines)
    acc = np.mean([bit_accuracy(parse_bits(emb[k]), parse_bits(det[k])) for k in emb])
    assert acc > 0.85
    assert json.loads((tmp_path / "det" / "summary.json").read_text())["bit_accuracy"] == pytest.approx(acc)

    # attribution among 1,000 random users, the 6 embedded ones among them; clean photos unattributed
    rng = np.random.default_rng(3)
    rows = [[f"user{i}", bits_to_str(rng.integers(0, 2, 100))] for i in range(994)]
    rows += [[f"owner_{k}", v] for k, v in emb.items()]
    db = tmp_path / "users.csv"
    with db.open("w", newline="") as f:
        csv.writer(f).writerows([["user", "bits"], *rows])
    assert cli("attribute", "--decoder_path", dec, "--data_dir", tmp_path / "emb" / "fingerprinted_images",
               "--database", db, "--output_dir", tmp_path / "att", "--quiet") == 0
    got = list(csv.DictReader((tmp_path / "att" / "attribution.csv").open()))
    assert [r["user"] for r in got] == [f"owner_{r['path']}" for r in got]
    assert all(r["attributed"] == "1" and float(r["p_value"]) < 1e-9 for r in got)
    assert cli("attribute", "--decoder_path", dec, "--data_dir", photos, "--database", db, "--output_dir",
               tmp_path / "att_clean", "--quiet") == 0
    clean = list(csv.DictReader((tmp_path / "att_clean" / "attribution.csv").open()))
    assert len(clean) == 6 and all(r["attributed"] == "0" and r["user"] == "" for r in clean)


def test_shipped_pair_as_a_registered_method(shared_data, tmp_path, capsys):
    """eval_dif.py scores -log10(p): fingerprinted (identical fingerprint) vs clean photos."""
    import eval_dif

    enc, dec = SHIPPED / "encoder.pth", SHIPPED / "decoder.pth"
    photos = _photos(shared_data, tmp_path, n=8)
    assert cli("embed", "--encoder_path", enc, "--data_dir", photos, "--output_dir", tmp_path / "emb",
               "--identical_fingerprints", "--quiet") == 0
    data = tmp_path / "data"
    (data / "0_real").mkdir(parents=True)
    import shutil

    from PIL import Image

    encoder = load_model(enc, "encoder")
    for p in photos.iterdir():  # the clean images as embed wrote theirs (size and PNG), so only the bits differ
        from dif.artificial.train import preprocess
        from dif.data import load_image

        x = load_image(p) if encoder.frame_psnr else preprocess(load_image(p), encoder.resolution)
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(data / "0_real" / f"{p.stem}.png")
    shutil.copytree(tmp_path / "emb" / "fingerprinted_images", data / "1_fake")
    assert cli("detector", "--decoder_path", dec, "--fingerprints", tmp_path / "emb" / "embedded_fingerprints.txt",
               "--output_dir", tmp_path / "check") == 0
    capsys.readouterr()
    out_json = tmp_path / "m.json"
    assert run_main(eval_dif.main, [str(tmp_path / "check"), str(data), "--json", str(out_json), "--quiet"]) == 0
    res = json.loads(out_json.read_text())
    text = json.dumps(res)
    assert '"auc": 1.0' in text and '"accuracy": 1.0' in text, text[:2000]


def test_random_scale_resizes_windows_and_leaves_default_crops_unchanged(tmp_path):
    """--random_scale S: windows of side drawn from [r, S r], resized down to r, so a pattern's period
    shrinks by the drawn factor (never grows); at 1 the crops are those of a config without the
    field (the shipped pairs' random stream is kept)."""
    from PIL import Image

    from dif.artificial.train import PhotoSet

    x = np.arange(256)
    stripes = 0.5 + 0.4 * np.sin(2 * np.pi * x / 16)  # vertical stripes of period 16 px
    img = np.repeat(np.tile(stripes, (256, 1))[..., None], 3, axis=2)
    path = tmp_path / "stripes.png"
    Image.fromarray((img * 255).round().astype(np.uint8)).save(path)
    base = ArtificialConfig(image_resolution=32, random_crop=True, crops_per_epoch=60, seed=5)
    plain = torch.stack([PhotoSet([path], base)[i] for i in range(60)])
    same = torch.stack([PhotoSet([path], ArtificialConfig(**{**base.__dict__, "random_scale": 1.0}))[i] for i in range(60)])
    assert torch.equal(plain, same)
    scaled = torch.stack([PhotoSet([path], ArtificialConfig(**{**base.__dict__, "random_scale": 4.0}))[i]
                          for i in range(60)])
    assert scaled.min() >= 0 and scaled.max() <= 1

    def peak_bin(crops):  # the dominant horizontal frequency of each crop (bins of 1/32 cycles per px)
        rows = crops.mean((1, 2)) - crops.mean((1, 2, 3))[:, None]
        return torch.fft.rfft(rows, dim=-1).abs()[:, 1:].argmax(-1) + 1

    assert (peak_bin(plain) == 2).all()  # period 16 in a 32 px window: 2 cycles
    got = peak_bin(scaled)
    assert got.min() >= 2 and got.max() <= 8  # windows of 32-128 px: 2-8 cycles
    assert (got > 2).float().mean() > 0.5 and len(set(got.tolist())) >= 4  # spread over the range


# ----------------------------------------------------------------------------- bad input

def test_bad_input_one_line_exit_2(shared_data, tmp_path, capsys):
    photos = _photos(shared_data, tmp_path, n=1)
    assert cli("train", "--data_dir", photos, "--output_dir", tmp_path / "r", "--image_resolution", "48") == 2
    assert "power of 2" in one_line_error(capsys)
    for flag in ("--chroma", "--saturation", "--random_scale"):  # crop augmentation without random crops: refused
        assert cli("train", "--data_dir", photos, "--output_dir", tmp_path / "r", flag, "2") == 2
        assert "--random_crop" in one_line_error(capsys)
    assert cli("train", "--data_dir", photos, "--output_dir", tmp_path / "r", "--random_crop", "--chroma", "11") == 2
    one_line_error(capsys)
    assert cli("train", "--data_dir", photos, "--output_dir", tmp_path / "r", "--random_crop", "--random_scale", "0.5") == 2
    one_line_error(capsys)
    assert not (tmp_path / "r").exists()
    save_model(tmp_path / "e.pth", FingerprintEncoder(32, 100))
    save_model(tmp_path / "d50.pth", FingerprintDecoder(32, 50))
    assert cli("embed", "--encoder_path", tmp_path / "e.pth", "--check", tmp_path / "d50.pth", "--data_dir", photos,
               "--output_dir", tmp_path / "o") == 2
    assert "--fingerprint_length 100 does not match the decoder" in one_line_error(capsys)
    assert cli("embed", "--encoder_path", tmp_path / "e.pth", "--data_dir", photos, "--output_dir", tmp_path / "o",
               "--image_resolution", "64") == 2
    assert "--image_resolution 64 does not match" in one_line_error(capsys)
    db = tmp_path / "db.csv"
    db.write_text("user,bits\nalice," + "01" * 25 + "\n")
    save_model(tmp_path / "d.pth", FingerprintDecoder(32, 100))
    assert cli("attribute", "--decoder_path", tmp_path / "d.pth", "--data_dir", photos, "--database", db,
               "--output_dir", tmp_path / "a") == 2
    assert "50 bits, the model's are 100 bits" in one_line_error(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "o").exists()  # checked before any work
    assert cli("attribute", "--decoder_path", tmp_path / "d.pth", "--data_dir", photos, "--database", db,
               "--output_dir", tmp_path / "a", "--alpha", "2") == 2
    assert "--alpha" in one_line_error(capsys)
    assert cli("detector", "--decoder_path", tmp_path / "e.pth", "--fingerprint", "01", "--output_dir",
               tmp_path / "c") == 2
    assert "not a decoder" in one_line_error(capsys)


def test_training_continues_from_an_earlier_run(tiny_pair, shared_data, tmp_path, capsys):
    """--init_from starts from the saved weights (a continued run keeps what was learnt), and a pair
    of another size is refused in one line."""
    folder, _ = tiny_pair
    photos = _photos(shared_data, tmp_path, n=4)
    args = ["train", "--data_dir", photos, "--image_resolution", "32", "--fingerprint_length", "4", "--random_crop",
            "--crops_per_epoch", "16", "--batch_size", "16", "--num_epochs", "1", "--lr", "1e-7", "--quiet"]
    assert cli(*args, "--output_dir", tmp_path / "cont", "--init_from", folder) == 0
    before, after = load_model(folder / "decoder.pth", "decoder"), load_model(tmp_path / "cont" / "decoder.pth", "decoder")
    diff = max(float((a - b).abs().max()) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert diff < 1e-5  # one step at lr 1e-7 from the earlier weights
    assert "continued from" in (tmp_path / "cont" / "model_card.md").read_text()
    capsys.readouterr()
    assert cli(*[a if a != "4" else "8" for a in args], "--output_dir", tmp_path / "bad", "--init_from", folder) == 2
    assert "does not match" in one_line_error(capsys)


def test_simulated_jpeg_follows_the_codec_and_its_gradient_sees_the_dead_zone(shared_data):
    """simulated_jpeg is close to Pillow's codec at every quality (far closer than to the input),
    and lower quality loses more; jpeg_through gives the codec's exact output either way; its
    simulated gradient passes a low-frequency change and mostly stops a faint high-frequency one,
    where the straight-through gradient passes both untouched."""
    from dif.artificial.jpeg import jpeg_through, quant_table, real_jpeg, simulated_jpeg
    from dif.data import load_image

    paths = sorted((shared_data / "natural" / "live1").iterdir())[:4]
    x = torch.stack([load_image(p)[..., :64, :64] for p in paths])
    psnr_ = lambda a, b: float(10 * torch.log10(1 / ((a - b) ** 2).mean()))  # noqa: E731
    prev = math.inf
    for q in (95, 75, 50):
        real, sim = real_jpeg(x, q), simulated_jpeg(x, q)
        assert psnr_(sim, real) > psnr_(real, x) + 2
        assert psnr_(real, x) < prev
        prev = psnr_(real, x)
    assert quant_table(50)[0, 0] == 16 and quant_table(100).max() == 1
    for grad in ("straight", "simulated"):
        assert torch.allclose(jpeg_through(x, 75, grad), real_jpeg(x, 75), atol=1e-6)
    grey = torch.full((1, 3, 64, 64), 0.5, requires_grad=True)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = torch.cos(2 * math.pi * xx / 64).expand(1, 3, 64, 64)
    checker = ((-1.0) ** (xx + yy)).expand(1, 3, 64, 64)
    gains = {}
    for grad in ("straight", "simulated"):
        for name, direction in (("smooth", smooth), ("checker", checker)):
            grey.grad = None
            (jpeg_through(grey, 50, grad) * direction).sum().backward()
            gains[grad, name] = float((grey.grad * direction).sum() / (direction * direction).sum())
    assert gains["straight", "smooth"] == pytest.approx(1) and gains["straight", "checker"] == pytest.approx(1)
    assert gains["simulated", "checker"] < 0.1 < gains["simulated", "smooth"]


def test_curriculum_strength_rises_only_while_bits_hold():
    from dif.artificial.train import Curriculum, perturb_batch

    c = Curriculum(4, 0.9)
    assert c.strength == 0
    c.observe(0, True, 0.95)
    c.observe(1, False, 0.99)  # a clean batch does not count
    c.observe(2, True, 0.5)  # bits lost: wait
    assert c.strength == pytest.approx(0.25)
    for step in range(3, 6):
        c.observe(step, True, 0.95)
    assert c.strength == 1 and c.full_at == 5
    assert Curriculum(0, 0.9).strength == 1
    # strength 0: the mildest end of every range (no noise at all)
    x = torch.rand(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    seen = [perturb_batch(x, ["noise"], g, strength=0.0) for _ in range(20)]
    assert any(k == "noise" for _, k in seen) and all(torch.equal(y, x) for y, _ in seen)
    # a kind named twice is drawn twice as often (how --perturb blur,blur,noise,jpeg weighs blur)
    kinds = [perturb_batch(x[:1, :, :8, :8], ["blur", "blur", "noise"], g)[1] for _ in range(600)]
    n_blur, n_noise = kinds.count("blur"), kinds.count("noise")
    assert 1.5 < n_blur / n_noise < 2.7 and 200 < n_blur + n_noise < 400


def test_the_square64_pair_keeps_its_bits_through_jpeg_blur_and_noise(shared_data):
    """The square 64 px pair on held-out LIVE1 crops (measured 0.979 JPEG 90, 0.954 JPEG 75, 0.891 blur 1,
    0.948 noise 0.05); the invisible 64 px pair, trained without perturbations, loses JPEG (0.50)."""
    from dif.artificial.train import preprocess
    from dif.data import list_images
    from dif.robustness import get_perturbation

    x = fixed_crops(list_images(shared_data / "natural" / "live1")[:10], 64, 2, 1)
    acc = {}
    for name, pair in (("default", SQUARE64), ("invisible64", ROOT / "checks" / "artificial" / "invisible64")):
        enc = load_model(pair / "encoder.pth", "encoder")
        dec = load_model(pair / "decoder.pth", "decoder")
        for c in ("jpeg90", "jpeg75", "blur1", "noise0.05"):
            f = get_perturbation(c)
            acc[name, c] = measure(enc, dec, x, perturb=lambda im, f=f: preprocess(f(im), 64))["bit_accuracy"]
    assert acc["default", "jpeg90"] > 0.95 and acc["default", "jpeg75"] > 0.93
    assert acc["default", "blur1"] > 0.85 and acc["default", "noise0.05"] > 0.9
    assert acc["invisible64", "jpeg90"] < 0.6