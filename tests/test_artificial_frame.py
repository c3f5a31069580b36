"""Artificial fingerprints at a photo's own size (the default pair's whole-frame protocol): the size,
aspect and colour of every photo are kept, the bits read back from photos of any size, through
JPEG and a centre crop, the tiles and the crop search by hand, and bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dif.artificial import __main__ as art_cli
from dif.artificial.bits import bit_accuracy, decode_bits, random_bits
from dif.artificial.frame import (CROP_SEARCH, embed_frame, from_tiles, grid_for, inside_weights, read_frame,
                                  to_tiles, uncrop)

GRID = 4
from dif.artificial.weights import DEFAULT_PAIR, load_model
from dif.cli import run_main
from dif.data import load_image
from dif.robustness import get_perturbation


def cli(*args) -> int:
    return run_main(art_cli.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pair():
    return load_model(DEFAULT_PAIR / "encoder.pth", "encoder"), load_model(DEFAULT_PAIR / "decoder.pth", "decoder")


def test_the_default_pair_is_a_whole_frame_pair(pair):
    enc, dec = pair
    assert enc.frame_psnr == dec.frame_psnr == 38.5 and enc.luma


def test_tiles_round_trip_and_inside_weights():
    t = torch.rand(2, 3, GRID * 8, GRID * 8)
    tiles = to_tiles(t, 8)
    assert tiles.shape == (2 * GRID * GRID, 3, 8, 8)
    assert torch.equal(tiles[1], t[0, :, :8, 8:16])  # row by row
    assert torch.equal(from_tiles(tiles, 2), t)
    assert torch.equal(inside_weights(1.0, 64, GRID), torch.ones(GRID * GRID))
    w = inside_weights(0.75, 64, GRID).reshape(GRID, GRID)  # the frame's outer 12.5% on each side is missing
    assert w[1:3, 1:3].eq(1).all() and w[0, 0] == pytest.approx(0.5 ** 2) and w[0, 1] == pytest.approx(0.5)
    sides = ((64, 64), (95, 4096), (96, 300), (383, 383), (384, 2000), (511, 511), (512, 4096))
    assert [grid_for(h, w, 64) for h, w in sides] == [1, 1, 2, 2, 3, 3, 4]
    x = torch.rand(1, 3, 30, 40)
    big = uncrop(x, 0.75)
    assert big.shape[-2:] == (40, 53) and torch.equal(big[..., 5:35, 6:46], x)
    assert torch.allclose(big[..., 0, 0], x.mean((-2, -1)))  # the mean colour
    edge = uncrop(x, 0.75, "edge")  # the edge pixels repeated outward
    assert edge.shape == big.shape and torch.equal(edge[..., 5:35, 6:46], x)
    assert torch.equal(edge[..., 0, 0], x[..., 0, 0]) and torch.equal(edge[..., 39, 20], x[..., 29, 14])


@pytest.mark.parametrize("size", [(64, 64), (97, 203), (203, 97), (80, 4096)])
def test_embed_keeps_size_and_aspect_and_reads_back(shared_data, tmp_path, size):
    """Any size from 64 px to 4096 px a side, portrait or landscape; each PSNR is the pair's 38.5 dB."""
    src = load_image(sorted((shared_data / "natural" / "live1").glob("*.png"))[3])
    h, w = size
    x = torch.nn.functional.interpolate(src[None], size=size, mode="bilinear", antialias=True, align_corners=False)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / "p.png")
    assert cli("embed", "--data_dir", folder, "--output_dir", tmp_path / "emb", "--check",
               DEFAULT_PAIR / "decoder.pth", "--quiet") == 0
    out = Image.open(tmp_path / "emb" / "fingerprinted_images" / "p.png")
    assert out.size == (w, h) and out.mode == "RGB"
    summary = json.loads((tmp_path / "emb" / "summary.json").read_text())
    assert summary["psnr"] == pytest.approx(38.5, abs=0.3) and "whole photo" in summary["protocol"]
    assert summary["bit_accuracy"] >= (0.9 if min(size) >= 97 else 0.75)


def test_a_grey_photo_comes_back_grey_at_its_size(shared_data, tmp_path):
    """bsd68 photos are grey: the change is the same in R, G and B, so the photo stays grey."""
    folder = tmp_path / "in"
    folder.mkdir()
    p = sorted((shared_data / "natural" / "bsd68").iterdir())[0]
    Image.open(p).convert("L").save(folder / "g.png")
    assert cli("embed", "--data_dir", folder, "--output_dir", tmp_path / "emb", "--quiet") == 0
    out = np.asarray(Image.open(tmp_path / "emb" / "fingerprinted_images" / "g.png").convert("RGB")).astype(int)
    assert out.shape[:2] == np.asarray(Image.open(p)).shape[:2]
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 1 and np.abs(out[..., 0] - out[..., 2]).max() <= 1


def test_bits_survive_jpeg_and_a_centre_crop_found_by_the_search(pair, shared_data):
    enc, dec = pair
    g = torch.Generator().manual_seed(0)
    accs, found = {"clean": [], "jpeg75": [], "crop0.894": []}, []
    for p in sorted((shared_data / "natural" / "live1").iterdir())[2:6]:  # 512-640 px: grids 3 and 4
        x = load_image(p)[None]
        bits = random_bits(1, 100, g)
        with torch.no_grad():
            y = (embed_frame(enc, bits, x, 38.5) * 255).round() / 255
            for name in accs:
                z = get_perturbation(name)(y[0])[None] if name != "clean" else y
                logits, fraction = read_frame(dec, z)
                accs[name].append(float(bit_accuracy(bits, decode_bits(logits))[0]))
                found.append((name, float(fraction[0])))
    assert np.mean(accs["clean"]) >= 0.98 and np.mean(accs["jpeg75"]) >= 0.95 and np.mean(accs["crop0.894"]) >= 0.85
    assert all(f == 1.0 for name, f in found if name == "clean")
    assert all(abs(f - 0.894) <= 0.03 for name, f in found if name == "crop0.894")
    assert CROP_SEARCH[0] == 1.0 and min(CROP_SEARCH) == 0.75


def test_smooth_photos_are_read_at_their_own_frame_through_the_choice_noise(pair, shared_data):
    """Four smooth faces whose tiles, read without noise, agree more at a wrong frame (the content
    read alike by every tile) than at their own: the seeded noise the frame is chosen on finds
    their own frame and every bit, and a photo's reading does not depend on its batch."""
    enc, dec = pair
    names = ["117_deepfake_real.jpg", "121_deepfake_real.jpg", "128_deepfake_real.jpg", "139_deepfake_real.jpg"]
    x = torch.stack([load_image(shared_data / "cnndetection" / "deepfake" / "0_real" / n) for n in names])
    bits = random_bits(4, 100, torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = (embed_frame(enc, bits, x, 38.5) * 255).round() / 255
        plain, plain_f = read_frame(dec, y, noise=0)
        logits, fraction = read_frame(dec, y)
        alone, _ = read_frame(dec, y[1:2])
    assert float(bit_accuracy(bits, decode_bits(plain)).mean()) < 0.8 and float(plain_f.min()) < 0.99
    assert float(bit_accuracy(bits, decode_bits(logits)).min()) >= 0.98 and float(fraction.min()) >= 0.99
    assert torch.allclose(alone[0], logits[1], atol=1e-5)


def test_a_clean_photo_reads_as_random_bits(pair, shared_data):
    """The search keeps the most confident reading, never the one nearest any fingerprint: a clean
    photo's bits agree with a random string about half the time."""
    _, dec = pair
    x = torch.stack([load_image(p) for p in sorted((shared_data / "cnndetection" / "crn" / "0_real").iterdir())[:8]])
    with torch.no_grad():
        bits = decode_bits(read_frame(dec, x)[0])
    target = random_bits(8, 100, torch.Generator().manual_seed(5))
    assert 0.35 < float(bit_accuracy(target, bits).mean()) < 0.65


def test_psnr_is_refused_for_a_square_pair_and_out_of_range(tmp_path, capsys, shared_data):
    from pathlib import Path

    square = Path(__file__).resolve().parents[1] / "checks" / "artificial" / "square64"
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (80, 80), (120, 90, 60)).save(folder / "a.png")
    assert cli("embed", "--encoder_path", square / "encoder.pth", "--psnr", 40, "--data_dir", folder,
               "--output_dir", tmp_path / "o1") == 2
    assert "whole-photo pair" in capsys.readouterr().err.strip().splitlines()[-1]
    assert cli("embed", "--psnr", 10, "--data_dir", folder, "--output_dir", tmp_path / "o2") == 2
    assert "--psnr must be from 20 to 80" in capsys.readouterr().err.strip().splitlines()[-1]
    assert cli("embed", "--use_celeba_preprocessing", "--data_dir", folder, "--output_dir", tmp_path / "o3") == 2
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_whole_makes_the_shipped_pair_from_square64(tmp_path, capsys):
    """`whole` records the protocol and PSNR in a square pair's weight files, networks unchanged:
    from square64 at 38.5 dB it gives the shipped pair, weight for weight."""
    from pathlib import Path

    square = Path(__file__).resolve().parents[1] / "checks" / "artificial" / "square64"
    assert cli("whole", "--init_from", square, "--output_dir", tmp_path / "w") == 0
    for kind in ("encoder", "decoder"):
        made, shipped = (load_model(d / f"{kind}.pth", kind) for d in (tmp_path / "w", DEFAULT_PAIR))
        assert made.frame_psnr == shipped.frame_psnr == 38.5
        assert all(torch.equal(a, b) for a, b in zip(made.state_dict().values(), shipped.state_dict().values()))
    assert "square64" in (tmp_path / "w" / "model_card.md").read_text()
    capsys.readouterr()
    assert cli("whole", "--init_from", square, "--psnr", 90, "--output_dir", tmp_path / "x") == 2
    assert "--psnr must be from 20 to 80" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()
