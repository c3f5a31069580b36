"""Hostile input for the commands beside train_dif.py / eval_dif.py (artificial fingerprints,
DeepFeatureX, eval_dif.py on other methods' folders), grouped by command: every case answers one
line naming the file or flag and exit code 2, or is handled when the input is acceptable, and a
refused command writes nothing. What a command writes, its sibling reads back, for any file name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dif.artificial import __main__ as art_cli
from dif.artificial.models import FingerprintDecoder
from dif.artificial.weights import DEFAULT_PAIR, FORMAT, save_model
from dif.cli import run_main
from dif.deepfeaturex import __main__ as dfx_cli

ROOT = Path(__file__).resolve().parents[1]
PAIR = DEFAULT_PAIR  # the shipped default pair (whole photos at their own size, 100 bits), inside the package


def one_line_error(capsys) -> str:
    """The last stderr line, after any per-file warnings; never a traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    assert err[-1].startswith("error: ") or ": error: " in err[-1], err
    return err[-1]


def art(*args) -> int:
    return run_main(art_cli.main, [str(a) for a in args])


def dfx(*args) -> int:
    return run_main(dfx_cli.main, [str(a) for a in args])


def photo(path: Path, size: int = 48, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.random((-(-size // 8), -(-size // 8), 3))
    arr = np.kron(base, np.ones((8, 8, 1)))[:size, :size] * 0.7 + rng.random((size, size, 3)) * 0.3
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((arr * 255).astype(np.uint8)).save(os.fsencode(path), format="PNG")
    return path


ODD_NAMES = [os.fsdecode(b"caf\xe9 latin1.png"), "two\nlines.png", "trailing space .png", "back\\slash.png",
             "tab\there.png", "plain.png"]


# ----------------------------------------------------------------------------- dif.artificial embed / detect

def test_embed_and_detect_keep_any_file_name(tmp_path, capsys):
    """Names that are not UTF-8, hold a newline, a tab, a backslash or end in a space: embed writes
    them, detect --fingerprints reads embed's own file back and matches every image."""
    src = tmp_path / "src"
    for i, name in enumerate(ODD_NAMES):
        photo(src / name, size=128, seed=i)
    out, det = tmp_path / "out", tmp_path / "det"
    assert art("embed", "--encoder_path", PAIR / "encoder.pth", "--data_dir", src, "--output_dir", out,
               "--quiet") == 0
    listed = (out / "embedded_fingerprints.txt").read_bytes()
    assert listed.count(b"\n") == len(ODD_NAMES)  # one line per image, whatever its name
    assert art("detect", "--decoder_path", PAIR / "decoder.pth", "--data_dir", out / "fingerprinted_images",
               "--fingerprints", out / "embedded_fingerprints.txt", "--output_dir", det, "--quiet") == 0
    summary = json.loads((det / "summary.json").read_text())
    # synthetic block-noise photos, harder to read than photos (0.74 with the default pair): the names are the point
    assert summary["matched"] == len(ODD_NAMES) and summary["bit_accuracy"] > 0.65
    from dif.artificial.files import read_fingerprint_file

    found = read_fingerprint_file(det / "detected_fingerprints.txt")
    assert sorted(found) == sorted(f"{Path(n).stem}.png" for n in ODD_NAMES)
    capsys.readouterr()


def test_bit_string_errors_quote_the_bad_character(tmp_path, capsys):
    bits = "0" * 60 + "x" + "1" * 39
    assert art("detector", "--decoder_path", PAIR / "decoder.pth", "--fingerprint", bits, "--output_dir",
               tmp_path / "c") == 2
    line = one_line_error(capsys)
    assert "character 61 is 'x'" in line and "--fingerprint" in line
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- dif.artificial attribute

def test_a_spreadsheet_database_is_read_and_an_empty_user_refused(tmp_path, capsys):
    src = tmp_path / "src"
    for i in range(2):
        photo(src / f"p{i}.png", seed=i)
    bits = "01" * 50
    db = tmp_path / "db.csv"
    db.write_bytes(b"\xef\xbb\xbfuser,bits\r\nalice," + bits.encode() + b"\r\nbob," + bits[::-1].encode() + b"\r\n")
    assert art("attribute", "--decoder_path", PAIR / "decoder.pth", "--data_dir", src, "--database", db,
               "--output_dir", tmp_path / "a", "--quiet") == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["users"] == 2
    capsys.readouterr()
    db.write_text("user,bits\n," + bits + "\n")
    assert art("attribute", "--decoder_path", PAIR / "decoder.pth", "--data_dir", src, "--database", db,
               "--output_dir", tmp_path / "b", "--quiet") == 2
    assert "row 1: the user name is empty" in one_line_error(capsys)
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- dif.artificial train

def _tiny_train(src: Path, out: Path, *extra) -> int:
    return art("train", "--data_dir", src, "--output_dir", out, "--image_resolution", "32", "--fingerprint_length",
               "8", "--random_crop", "--crops_per_epoch", "8", "--batch_size", "4", "--num_epochs", "1", "--quiet",
               *extra)


def test_train_accepts_every_seed_its_help_allows(tmp_path, capsys):
    src = tmp_path / "src"
    photo(src / "a.png", size=64)
    assert _tiny_train(src, tmp_path / "r", "--seed", str(2**32 - 1)) == 0
    assert _tiny_train(src, tmp_path / "r2", "--seed", str(2**32)) == 2
    assert "--seed" in one_line_error(capsys)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_train_skips_unusable_images_and_names_them(tmp_path, capsys, workers):
    src = tmp_path / "src"
    for i in range(3):
        photo(src / f"good{i}.png", size=64, seed=i)
    good = (src / "good0.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (1, 1)).save(src / "tiny.png")
    assert _tiny_train(src, tmp_path / "r", "--workers", workers) == 0
    out = capsys.readouterr()
    assert "truncated.png" in out.err and "tiny.png" in out.err and "Traceback" not in out.err
    assert "skipped 2 unusable image(s)" in out.out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert sorted(Path(p).name for p, _ in summary["skipped"]) == ["tiny.png", "truncated.png"]
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(src / "truncated.png", bad)
    shutil.copy(src / "tiny.png", bad)
    assert _tiny_train(bad, tmp_path / "r3", "--workers", workers) == 2
    assert "no usable training image" in one_line_error(capsys)
    assert not (tmp_path / "r3").exists()


@pytest.mark.parametrize("field,value,msg", [
    ("fingerprint_length", -5, "from 1 to 4096"),
    ("fingerprint_length", 10**12, "from 1 to 4096"),
    ("resolution", 2**20, "from 32 to 1024"),
    ("resolution", 48, "power of 2"),
])
def test_weights_headers_are_checked_before_any_network_is_built(tmp_path, capsys, field, value, msg):
    path = tmp_path / "d.pth"
    save_model(path, FingerprintDecoder(32, 8))
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT["decoder"]
    payload[field] = value
    torch.save(payload, path)
    photo(tmp_path / "src" / "a.png")
    assert art("detect", "--decoder_path", path, "--data_dir", tmp_path / "src", "--output_dir", tmp_path / "o") == 2
    line = one_line_error(capsys)
    assert msg in line and "d.pth" in line
    assert not (tmp_path / "o").exists()


def test_eval_dif_alpha_is_the_flags_fault(tmp_path, capsys, scripts):
    check = tmp_path / "users"
    assert art("detector", "--decoder_path", PAIR / "decoder.pth", "--fingerprint", "01" * 50, "--output_dir",
               check) == 0
    photo(tmp_path / "d" / "0_real" / "a.png")
    photo(tmp_path / "d" / "1_fake" / "b.png", seed=1)
    capsys.readouterr()
    assert run_main(scripts.eval.main, [str(check), str(tmp_path / "d"), "--alpha", "2", "--quiet"]) == 2
    line = one_line_error(capsys)
    assert "--alpha" in line and "config.json" not in line


# ----------------------------------------------------------------------------- dif.deepfeaturex

def _layout(root: Path, names: dict[str, list[str]], size: int = 40) -> Path:
    for cls, files in names.items():
        for i, n in enumerate(files):
            photo(root / cls / "m" / n, size=size, seed=hash((cls, i)) % 1000)
    return root


@pytest.mark.parametrize("command", ["guidance", "test"])
def test_dfx_seed_is_range_checked(tmp_path, capsys, command):
    argv = (["guidance", "--datasets_dir", tmp_path, "--saving_dir", tmp_path / "g"] if command == "guidance" else
            ["test", "--model_path", tmp_path, "--datasets_dir", tmp_path])
    assert dfx(*argv, "--seed", "-1") == 2
    assert "--seed" in one_line_error(capsys)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("row,msg", [
    ("0,{p}", "line 3: expected the fields"),
    ("0,{p},", "line 3: the model field is empty"),
    ("0,{p},m,base,extra", "line 3: expected the fields"),
    ("0", "line 3: expected the fields"),
])
def test_dfx_guidance_rows_are_checked(tmp_path, capsys, row, msg):
    p = photo(tmp_path / "a.png")
    g = tmp_path / "g.csv"
    g.write_text(f"label,image_path,model,split\n0,{p},m,base\n" + row.format(p=p) + "\n")
    assert dfx("train-base", "--guidance", g, "--main_class", "0", "--saving_path", tmp_path / "m") == 2
    assert msg in one_line_error(capsys)
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def dfx_model(tmp_path_factory):
    """A tiny two-class complete model trained from a guidance.csv that ``guidance`` wrote for
    file names that are not UTF-8 or hold a newline (train-base must read it back)."""
    tmp = tmp_path_factory.mktemp("dfx")
    names = [os.fsdecode(b"r\xe9al.png"), "new\nline.png"] + [f"r{i}.png" for i in range(4)]
    root = _layout(tmp / "data", {"real": names, "gan_generated": [f"g{i}.png" for i in range(6)]})
    assert dfx("guidance", "--datasets_dir", root, "--saving_dir", tmp) == 0
    fast = ["--image_size", "32", "--epochs", "1", "--batch_size", "4", "--quiet"]
    for c in ("gan_generated", "real"):
        assert dfx("train-base", "--guidance", tmp / "guidance.csv", "--main_class", c, "--saving_path",
                   tmp / "models", *fast) == 0
    assert dfx("train-complete", "--guidance", tmp / "guidance.csv", "--saving_path", tmp / "models", *fast) == 0
    return tmp


def test_dfx_guidance_round_trips_any_file_name(dfx_model):
    from dif.deepfeaturex.data import read_guidance

    _, items = read_guidance(dfx_model / "guidance.csv")
    names = {it.path.name for it in items}
    assert os.fsdecode(b"r\xe9al.png") in names and "new\nline.png" in names
    assert all(it.path.is_file() for it in items)


def test_dfx_test_with_no_readable_image_and_images_smaller_than_the_blur(dfx_model, tmp_path, capsys):
    model = dfx_model / "models" / "complete"
    junk = tmp_path / "junk"
    for cls in ("real", "gan_generated"):
        (junk / cls / "m").mkdir(parents=True)
        for i in range(2):
            (junk / cls / "m" / f"x{i}.png").write_bytes(b"not an image")
    assert dfx("test", "--model_path", model, "--datasets_dir", junk, "--split", "all", "--quiet") == 2
    assert "none of the 4 test image(s) could be read" in one_line_error(capsys)
    small = _layout(tmp_path / "small", {"real": ["a.png", "b.png"], "gan_generated": ["c.png", "d.png"]}, size=6)
    out = tmp_path / "t.json"
    assert dfx("test", "--model_path", model, "--datasets_dir", small, "--split", "all", "--robustness",
               "--saving_path", out, "--quiet") == 0
    res = json.loads(out.read_text())
    assert res["blurk15"] == {"images": 0, "skipped": 4} and res["clean"]["n_images"] == 4
    assert res["blurk3"]["n_images"] == 4  # a kernel the images can hold
    assert "too small for a 15x15 blur" in capsys.readouterr().err


def test_dfx_pretrained_weights_of_another_shape(tmp_path, capsys):
    from dif.deepfeaturex.models import build_backbone

    net = build_backbone("resnet18", 1000, "none", 32)[0]
    sd = net.state_dict()
    sd["conv1.weight"] = sd["conv1.weight"][:, :1].clone()  # a 1-channel first layer: same keys, other shapes
    torch.save(sd, tmp_path / "grey.pth")
    root = _layout(tmp_path / "d", {"real": ["a.png", "b.png"], "gan_generated": ["c.png", "d.png"]})
    assert dfx("train-base", "--datasets_dir", root, "--main_class", "real", "--saving_path", tmp_path / "m",
               "--pretrained", tmp_path / "grey.pth", "--image_size", "32", "--epochs", "1", "--quiet") == 2
    line = one_line_error(capsys)
    assert "conv1.weight is (64, 1, 7, 7)" in line and "(64, 3, 7, 7)" in line
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- eval_dif.py

@pytest.fixture(scope="module")
def small_check(tmp_path_factory, tiny_data, scripts):
    out = tmp_path_factory.mktemp("ev") / "check"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), "--epochs", "2", "--crop", "32", "--batch", "8",
                                         "--extractor", "highpass", "--augment", "0", "--calibrate", "cv", "--folds",
                                         "2", "--quiet"]) == 0
    return out


def test_eval_perturbation_on_an_image_smaller_than_its_kernel(small_check, tiny_data, tmp_path, scripts, capsys):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    photo(data / "1_fake" / "small.png", size=6)
    capsys.readouterr()
    js = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(small_check), str(data), "--perturb", "blurk15,shift4", "--json", str(js),
                                        "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "small.png" in err and "Traceback" not in err


def _without_file_override() -> list[str] | None:
    """A command prefix under which root is refused files by their permission bits, as a user is."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.parametrize("target", ["config.json", "chk_2.pt", "calibration.json", "."])
def test_eval_on_a_checkpoint_it_may_not_read(small_check, tiny_data, tmp_path, target):
    prefix = _without_file_override()
    if prefix is None:
        pytest.fail("setpriv (util-linux) is needed to test permissions as root")
    check = tmp_path / "check"
    shutil.copytree(small_check, check)
    victim = check / target
    victim.chmod(0)
    try:
        p = subprocess.run([*prefix, sys.executable, str(ROOT / "eval_dif.py"), str(check), str(tiny_data),
                            "--quiet"], capture_output=True, text=True, timeout=120)
    finally:
        victim.chmod(0o755 if victim.is_dir() else 0o644)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Permission denied" in lines[0] and "Traceback" not in p.stderr, p.stderr
