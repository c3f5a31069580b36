import numpy as np
import pytest
import torch

from dif.data import training_residuals
from dif.extractors import HighPassExtractor
from dif.errors import DIFError
from dif.robustness import (STANDARD, get_perturbation, jpeg, parse_perturbations, parse_reencode,
                            random_augmentation, shift)
from conftest import make_dataset

# crop keeps 75% of the area (0.866 of each side); shiftN drops 2N rows and columns; rot5 keeps the
# largest central rectangle without corner fill
EXPECTED_SHAPES = {"resize0.5": (3, 24, 40), "resize2": (3, 96, 160), "crop": (3, 42, 69), "shift1": (3, 46, 78),
                   "shift4": (3, 40, 72), "rot5": (3, 40, 68)}


@pytest.mark.parametrize("name", STANDARD)
def test_each_perturbation_shape_range_and_determinism(name):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 48, 80, generator=g)
    f = get_perturbation(name)
    y = f(x)
    assert y.shape == EXPECTED_SHAPES.get(name, (3, 48, 80))
    assert y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, f(x))
    if name not in ("resize0.5", "resize2", "crop", "shift1", "shift4", "rot5"):
        assert not torch.allclose(y, x, atol=1e-3)  # it did something


def test_shift_moves_the_centre_crop_n_pixels_without_wrapping():
    from dif.data import center_crop

    x = torch.arange(300 * 300, dtype=torch.float32).reshape(1, 300, 300)
    for n in (1, 4):
        y = shift(x, n)
        assert torch.equal(y, x[:, 2 * n:, 2 * n:])  # real pixels only, nothing wrapped
        # the centre crop of the shifted image starts n pixels further than the clean one's (margin 44: even)
        assert torch.equal(center_crop(y, (256, 256)), x[:, 22 + n:22 + n + 256, 22 + n:22 + n + 256])
    small = torch.rand(3, 256, 256)  # an image the size of the crop: scored smaller, still no wrapped rows
    assert shift(small, 1).shape == (3, 254, 254)


def test_rotation_scores_no_corner_fill():
    x = torch.full((3, 256, 256), 0.8)
    y = get_perturbation("rot5")(x)
    assert y.shape[-1] < 256 and y.min() > 0.7  # no black corner left (the fill is 0)


def test_crop_is_off_centre_and_off_grid():
    from dif.robustness import off_grid_crop

    x = torch.arange(356 * 356, dtype=torch.float32).reshape(1, 356, 356)
    y = off_grid_crop(x)
    assert y.shape == (1, 308, 308) and abs(308 ** 2 / 356 ** 2 - 0.75) < 0.01
    top = int(y[0, 0, 0]) // 356
    assert top % 2 == 1 and top != (356 - 308) // 2  # odd, not centred
    from dif.data import center_crop

    # after the scorer's centre crop the window sits at an odd offset from the clean one (50): off every grid
    start = int(center_crop(y, (256, 256))[0, 0, 0]) // 356
    assert (start - 50) % 2 == 1


def test_jpeg_quality_orders_the_error():
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.3 + 0.35
    errs = [float((jpeg(x, q) - x).abs().mean()) for q in (95, 75, 50)]
    assert errs[0] < errs[1] < errs[2]


def test_parsing():
    assert parse_perturbations("all") == STANDARD
    assert parse_perturbations("jpeg90, shift1,jpeg90") == ["jpeg90", "shift1"]
    assert parse_perturbations("jpeg60") == ["jpeg60"]
    for bad in ("jpeg0", "jpeg101", "wobble", "", "resize0"):
        with pytest.raises(DIFError):
            parse_perturbations(bad)
    assert parse_reencode("") is None
    x = torch.rand(3, 16, 16)
    assert torch.equal(parse_reencode("jpeg:80")(x), jpeg(x, 80))
    assert torch.allclose(parse_reencode("png")(x), x, atol=1 / 255)
    for bad in ("jpeg", "jpeg:0", "gif", "png:3"):
        with pytest.raises(DIFError):
            parse_reencode(bad)


def test_random_augmentation_is_reproducible():
    x = torch.rand(3, 40, 40)
    a = [random_augmentation(np.random.default_rng(5))(x) for _ in range(2)]
    assert torch.equal(a[0], a[1])


def test_reencoding_reaches_both_classes_and_augmentation_adds_copies(tmp_path):
    data = make_dataset(tmp_path / "d", n=3, size=48)
    paths = sorted((data / "0_real").iterdir()) + sorted((data / "1_fake").iterdir())
    labels = [0, 0, 0, 1, 1, 1]
    ext = HighPassExtractor(1.0)
    plain = training_residuals(paths, labels, ext, (32, 32))
    jpg = training_residuals(paths, labels, ext, (32, 32), reencode="jpeg:50")
    diff = (plain.cache.residuals - jpg.cache.residuals).flatten(1).abs().mean(1)
    assert (diff[:3] > 1e-3).all() and (diff[3:] > 1e-3).all()  # real and fake both re-encoded
    aug = training_residuals(paths, labels, ext, (32, 32), augment=2, seed=3)
    assert aug.cache.residuals.shape == (18, 3, 32, 32)
    assert aug.groups.tolist() == [0, 1, 2, 3, 4, 5] * 3
    assert aug.cache.labels.tolist() == labels * 3
    again = training_residuals(paths, labels, ext, (32, 32), augment=2, seed=3)
    assert torch.equal(aug.cache.residuals, again.cache.residuals)


def test_noise_and_fractional_crop():
    x = torch.full((3, 64, 64), 0.5)
    y = get_perturbation("noise0.1")(x)
    assert torch.equal(y, get_perturbation("noise0.1")(x))  # seeded by the image: deterministic
    assert abs(float((y - x).std()) - 0.1) < 0.01
    assert not torch.equal(get_perturbation("noise0.1")(x + 0.01), y + 0.01)  # another image, other noise
    assert get_perturbation("crop0.5")(x).shape == (3, 32, 32)
    for bad in ("noise2", "crop0", "crop1.5"):
        with pytest.raises(DIFError):
            get_perturbation(bad)


def test_augmented_centres_are_written_with_augment_and_asked_for_by_name(tmp_path, scripts, capsys):
    import json

    from dif.cli import run_main

    data = make_dataset(tmp_path / "d", n=6)
    base = ["--epochs", "2", "--crop", "64", "--batch", "8", "--extractor", "highpass", "--quiet"]
    assert run_main(scripts.train.main, [str(data), str(tmp_path / "aug"), *base, "--augment", "1"]) == 0
    assert run_main(scripts.train.main, [str(data), str(tmp_path / "plain"), *base, "--augment", "0"]) == 0
    cal = json.loads((tmp_path / "aug" / "calibration.json").read_text())
    assert set(cal["augmented"]) == {"corr", "shift"} and cal["augmented"]["corr"] != cal["train"]["corr"]
    assert "augmented" not in json.loads((tmp_path / "plain" / "calibration.json").read_text())
    out = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(tmp_path / "aug"), str(data), "--centres", "augmented", "--json", str(out),
                                        "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["mu_real"] == pytest.approx(cal["augmented"]["corr"][0]) and m["mu_fake"] == pytest.approx(cal["augmented"]["corr"][1])
    capsys.readouterr()
    assert run_main(scripts.eval.main, [str(tmp_path / "plain"), str(data), "--centres", "augmented", "--quiet"]) == 2
    assert "--augment" in capsys.readouterr().err


def test_augment_kinds_parse_in_canonical_order_and_refuse_unknown_names():
    from dif.robustness import AUGMENT_KINDS, parse_augment_kinds

    assert parse_augment_kinds("noise, jpeg,blur") == ("jpeg", "blur", "noise")
    assert parse_augment_kinds("all") == AUGMENT_KINDS
    for bad in ("", "jpeg,zoom", " , "):
        with pytest.raises(DIFError, match="--augment-kinds"):
            parse_augment_kinds(bad)


def test_the_five_old_kinds_draw_the_old_copies():
    """Fingerprints trained before --augment-kinds existed are reproduced by naming the five kinds:
    the draw is index-for-index the old one (kind = rng.integers(0, 5), then its parameter)."""
    from dif.robustness import blur, resize, roll, rotate_same_size

    x = torch.rand(3, 40, 40)
    for seed in range(12):
        got = random_augmentation(np.random.default_rng(seed), 0.5, ("jpeg", "resize", "blur", "shift", "rotate"))(x)
        rng = np.random.default_rng(seed)
        kind = rng.integers(0, 5)
        old = [lambda: jpeg(x, int(rng.integers(65, 101))), lambda: resize(x, float(rng.uniform(0.5, 1.5))),
               lambda: blur(x, float(rng.uniform(0.2, 1.2))), lambda: roll(x, int(rng.integers(1, 8))),
               lambda: rotate_same_size(x, float(rng.uniform(-6, 6)))][kind]()
        assert torch.equal(got, old)


def test_grid_kinds_keep_a_periodic_trace_in_phase_and_geometric_ones_do_not():
    """Why the kinds can be chosen: a period-4 trace planted in random content survives every copy
    drawn from jpeg, blur and noise (its high-pass residual still correlates with the trace), while
    shifts, rotations and resizes move it off its grid in many copies."""
    from dif.robustness import parse_augment_kinds

    g = torch.Generator().manual_seed(0)
    content = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64, generator=g), 5, 1, 2)[0]
    trace = torch.tensor([1.0, -1.0, 1.0, -1.0]).repeat(16)[None, :] * torch.tensor([1.0, 1, -1, -1]).repeat(16)[:, None]
    img = (0.3 + 0.4 * content + 0.02 * trace).clamp(0, 1)
    hp = HighPassExtractor(1.0)

    def corr(x: torch.Tensor) -> float:
        r = hp(x[None])[0].mean(0)[8:40, 8:40].flatten()
        t = trace[8:40, 8:40].flatten()
        return float(torch.corrcoef(torch.stack([r, t]))[0, 1])

    rng = np.random.default_rng(0)
    grid = [corr(random_augmentation(rng, 1.0, parse_augment_kinds("jpeg,blur,noise"))(img)) for _ in range(30)]
    geometric = [corr(random_augmentation(rng, 1.0, parse_augment_kinds("resize,shift,rotate"))(img))
                 for _ in range(30)]
    assert corr(img) > 0.9
    assert min(grid) > 0 and np.median(grid) > 0.8  # never reversed; weakened only by the strongest blurs
    assert sum(c < 0.2 for c in geometric) >= 15 and min(geometric) < -0.5  # a 2 px shift reverses a period-4 trace


def test_the_recipes_benchmark_runs_end_to_end(tmp_path):
    """benchmarks/recipes.py compare at a tiny size: every recipe (train_dif.py options, named or
    written out) trained, scored clean and perturbed, and saved; a bad recipe is one line, exit 2."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from dif.experiments.recipes import parse_recipes

    cfgs = parse_recipes(["paper", "grid=--augment-kinds jpeg,blur,noise --loss paper"], "--extractor highpass")
    assert (cfgs["paper"].augment, cfgs["paper"].loss, cfgs["paper"].tiles) == (0, "paper", 1)
    assert cfgs["grid"].augment_kinds == "jpeg,blur,noise" and cfgs["grid"].augment == 2
    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "set"
    make_dataset(data / "train", n=4, size=48)
    make_dataset(data / "test", n=3, size=48, seed=1)
    cmd = [sys.executable, str(root / "benchmarks" / "recipes.py"), "compare", str(data), "--out", str(tmp_path / "r.json"),
           "--extractor", "highpass", "--epochs", "2", "--crop", "32", "--perturb", "jpeg90"]
    p = subprocess.run(cmd + ["--recipe", "clean", "--recipe", "grid=--augment-kinds jpeg,blur,noise --loss paper",
                              "--figure", str(tmp_path / "r.png")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = json.loads((tmp_path / "r.json").read_text())
    assert [x["recipe"] for x in r["runs"]] == ["clean", "grid"]
    assert r["recipes"]["grid"]["augment_kinds"] == "jpeg,blur,noise" and r["recipes"]["grid"]["loss"] == "paper"
    assert r["recipes"]["clean"]["augment"] == 0 and set(r["mean"]["set/grid"]) == {"clean", "jpeg90"}
    bad = subprocess.run(cmd[:-4] + ["--out", str(tmp_path / "b.json"), "--recipe", "x=--augment -3"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--recipe" in bad.stderr and not (tmp_path / "b.json").exists()


def test_the_trace_probe_finds_a_planted_periodic_pattern(tmp_path):
    """benchmarks/trace_probe.py: the mean-difference fingerprint of fakes that carry a period-4
    pattern separates held-out images perfectly, and their power at that period exceeds the reals'."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "set"
    make_dataset(data / "train", n=4, size=48)
    make_dataset(data / "test", n=4, size=48, seed=1)
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "trace_probe.py"), str(data), "--crop", "32",
                        "--out", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["extractor"].split(":")[0] for r in rows] == ["highpass", "wavelet-dwt"]
    assert all(r["auc"] == 1.0 and r["period_power_ratio"] > 2 and r["test"] == [4, 4] for r in rows)


def test_the_trace_probe_over_every_tile(tmp_path):
    """--tiles 0: the fakes carry the planted pattern everywhere but in their centre crop (as a
    face fills the centre of a portrait); the centre-crop oracle sees nothing, the oracle over
    every tile, each image scored by the mean of its tiles, separates them."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from conftest import periodic_pattern, smooth_image, write_png
    from dif.experiments.trace import per_image_mean

    y, s = per_image_mean(["a", "a", "b"], [1, 1, 0], [0.2, 0.4, 0.1])
    assert y.tolist() == [1, 0] and np.allclose(s, [0.3, 0.1])
    rng = np.random.default_rng(0)
    pat = periodic_pattern(96, 96)
    pat[32:64, 32:64] = 0  # the centre crop of 32 px holds no trace
    for split, n in (("train", 6), ("test", 5)):
        for i in range(n):
            write_png(tmp_path / "set" / split / "0_real" / f"r{i}.png", smooth_image(rng, 96, 96))
            write_png(tmp_path / "set" / split / "1_fake" / f"f{i}.png", smooth_image(rng, 96, 96) + pat)
    root = Path(__file__).resolve().parents[1]
    auc = {}
    for tiles in ("1", "0"):
        out = tmp_path / f"t{tiles}.json"
        p = subprocess.run([sys.executable, str(root / "benchmarks" / "trace_probe.py"), str(tmp_path / "set"),
                            "--crop", "32", "--extractors", "highpass", "--tiles", tiles, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        (row,) = json.loads(out.read_text())["rows"]
        assert row["test"] == [5, 5] and row["tiles"] == int(tiles)
        auc[tiles] = row["auc"]
    assert auc["0"] == 1.0 and auc["1"] < 0.9, auc


def test_the_trace_probe_under_perturbations(tmp_path):
    """trace_probe.py --perturb: each perturbation applied to train and test images gives a row with
    the matched (oracle) AUC and the clean fingerprint's AUC; a planted period-4 pattern survives
    JPEG 90, and after resize 0.5 the period compared is 2 px."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from dif.experiments.trace import period_after

    root = Path(__file__).resolve().parents[1]

    assert [period_after(4, p) for p in ("clean", "jpeg75", "resize0.5", "resize2", "resize0.3")] == [4, 4, 2, 8, None]
    data = tmp_path / "set"
    make_dataset(data / "train", n=4, size=64)
    make_dataset(data / "test", n=4, size=64, seed=1)
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "trace_probe.py"), str(data), "--crop", "32",
                        "--extractors", "highpass", "--perturb", "jpeg90,resize0.5", "--out", str(tmp_path / "t.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = {r["perturbation"]: r for r in json.loads((tmp_path / "t.json").read_text())["rows"]}
    assert list(rows) == ["clean", "jpeg90", "resize0.5"]
    assert "auc_clean_fingerprint" not in rows["clean"] and rows["clean"]["auc"] == 1.0
    assert rows["jpeg90"]["auc"] == 1.0 and rows["jpeg90"]["auc_clean_fingerprint"] == 1.0
    assert rows["resize0.5"]["period"] == 2 and rows["resize0.5"]["test"] == [4, 4]
