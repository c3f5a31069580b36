"""The three scripts end to end on tiny data, and their answers to bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from dif.cli import run_main
from conftest import ROOT, make_dataset, write_png

TRAIN = ["--epochs", "4", "--crop", "64", "--batch", "8", "--checkpoint-every", "2", "--augment", "0", "--quiet"]


def one_line_error(capsys):
    """The error is one line; only per-image warnings may come before it."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines), lines
    assert all(l.startswith("WARNING: skipping") for l in lines[:-1]), lines
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, scripts):
    out = tmp_path_factory.mktemp("chk") / "check"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), *TRAIN, "--extractor", "highpass"]) == 0
    return out


def test_train_writes_everything(trained):
    names = set(os.listdir(trained))
    assert {"chk_2.pt", "chk_4.pt", "config.json", "train_files.json", "fingerprint.png", "fingerprint_fft.png",
            "training.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    raw = torch.load(trained / "chk_4.pt", weights_only=True)
    assert raw["Fingerprint"].shape == (1, 3, 64, 64) and len(raw["Loss"]) == 4 * 2
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["epochs"] == 4 and cfg["crop"] == 64 and cfg["batch_size"] == 8 and cfg["extractor"] == "highpass:1"


def test_options_are_honoured(tmp_path, tiny_data, scripts):
    out = tmp_path / "c"
    args = [str(tiny_data), str(out), "--e", "3", "--lr", "1e-3", "--bs", "4", "--tr", "4", "--cs", "32",
            "--a", "0.5", "--boost", "--seed", "7", "--f", "3", "--device", "cpu", "--extractor", "highpass:2", "--quiet",
            "--augment", "0"]
    assert run_main(scripts.train.main, args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["lr"], cfg["batch_size"], cfg["train_size"], cfg["crop"], cfg["alpha"], cfg["boost"],
            cfg["seed"], cfg["checkpoint_every"], cfg["extractor"]) == (3, 1e-3, 4, 4, 32, 0.5, True, 7, 3, "highpass:2")
    files = json.loads((out / "train_files.json").read_text())
    assert len(files["real"]) == 4 and len(files["fake"]) == 4
    raw = torch.load(out / "chk_3.pt", weights_only=True)
    assert raw["Fingerprint"].shape == (1, 3, 32, 32)
    assert len(raw["Loss"]) == 3 * 2  # 8 images in batches of 4
    assert sorted(p for p in os.listdir(out) if p.startswith("chk_")) == ["chk_3.pt"]


def test_same_seed_same_fingerprint(tmp_path, tiny_data, scripts):
    fps = []
    for name in ("a", "b"):
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / name), *TRAIN, "--extractor", "highpass"]) == 0
        fps.append(torch.load(tmp_path / name / "chk_4.pt", weights_only=True)["Fingerprint"])
    assert torch.equal(fps[0], fps[1])


def test_eval_labelled_with_outputs(tmp_path, trained, tiny_data, scripts, capsys):
    j, c, p = tmp_path / "m.json", tmp_path / "rows.csv", tmp_path / "plots"
    rc = run_main(scripts.eval.main, [str(trained), str(tiny_data), "--json", str(j), "--csv", str(c),
                                      "--plots", str(p), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Real Acc." in out and "---> Acc." in out and "AUC" in out
    m = json.loads(j.read_text())
    for key in ("accuracy", "real_accuracy", "fake_accuracy", "ap", "auc", "n_real", "n_fake", "threshold"):
        assert key in m
    for key in ("accuracy", "real_accuracy", "fake_accuracy", "ap", "auc"):
        assert 0.0 <= m[key] <= 1.0
    assert m["n_real"] == 6 and m["n_fake"] == 6
    rows = c.read_text().splitlines()
    assert rows[0] == "path,label,correlation,prediction" and len(rows) == 13
    assert (p / "histogram.png").stat().st_size > 1000 and (p / "roc.png").stat().st_size > 1000


def test_eval_epoch_forms(trained, tiny_data, scripts, capsys, tmp_path):
    for extra in (["2"], ["--epoch", "2"], ["2", "--epoch", "2"]):
        j = tmp_path / "e.json"
        assert run_main(scripts.eval.main, [str(trained), str(tiny_data), *extra, "--json", str(j), "--quiet"]) == 0
        assert json.loads(j.read_text())["checkpoint"].endswith("chk_2.pt")
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "3", "--quiet"]) == 2
    assert "no checkpoint for epoch 3" in one_line_error(capsys)
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "2", "--epoch", "4"]) == 2
    assert "disagree" in one_line_error(capsys)


def test_eval_unlabelled_folder_and_single_image(trained, tiny_data, scripts, capsys, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in list((tiny_data / "0_real").iterdir())[:2] + list((tiny_data / "1_fake").iterdir())[:2]:
        shutil.copy(p, folder / p.name)
    assert run_main(scripts.eval.main, [str(trained), str(folder), "--quiet", "--csv", str(tmp_path / "u.csv")]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if "\tcorr " in l]
    assert len(lines) == 4 and all(l.endswith(("real", "generated")) for l in lines)
    one = next(folder.iterdir())
    assert run_main(scripts.eval.main, [str(trained), str(one), "--quiet"]) == 0
    assert sum("\tcorr " in l for l in capsys.readouterr().out.splitlines()) == 1


def test_eval_detects_the_pattern_after_real_training(tmp_path, scripts, capsys):
    data = make_dataset(tmp_path / "d", n=10, size=64, seed=1)
    test = make_dataset(tmp_path / "t", n=10, size=64, seed=2)
    out = tmp_path / "c"
    args = [str(data), str(out), "--epochs", "30", "--crop", "64", "--batch", "20", "--lr", "2e-3", "--quiet",
            "--extractor", "highpass", "--augment", "0"]
    assert run_main(scripts.train.main, args) == 0
    j = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(out), str(test), "--json", str(j), "--quiet"]) == 0
    m = json.loads(j.read_text())
    assert m["auc"] >= 0.9 and m["accuracy"] >= 0.8, m


# ----------------------------------------------------------------------------- bad input

def _bad_train_cases(tmp_path, tiny_data):
    no_fake = tmp_path / "nofake"
    (no_fake / "0_real").mkdir(parents=True)
    shutil.copy(next((tiny_data / "0_real").iterdir()), no_fake / "0_real" / "a.png")
    empty = tmp_path / "empty"
    (empty / "0_real").mkdir(parents=True)
    (empty / "1_fake").mkdir(parents=True)
    (empty / "1_fake" / "readme.txt").write_text("x")
    shutil.copy(next((tiny_data / "0_real").iterdir()), empty / "0_real" / "a.png")
    corrupt = tmp_path / "corrupt"
    for sub in ("0_real", "1_fake"):
        (corrupt / sub).mkdir(parents=True)
        for i in range(2):
            (corrupt / sub / f"x{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    return [
        ([str(tmp_path / "missing"), str(tmp_path / "o1")], "not found"),
        ([str(no_fake), str(tmp_path / "o2")], "no '1_fake' folder"),
        ([str(empty), str(tmp_path / "o3")], "holds no images"),
        ([str(corrupt), str(tmp_path / "o4"), "--crop", "32"], "no usable"),
        ([str(corrupt), str(tmp_path / "o10"), "--crop", "16"], "at least 32"),
        ([str(tiny_data), str(tmp_path / "o5"), "--crop", "128"], "no usable"),
        ([str(tiny_data), str(tmp_path / "o6"), "--crop", "60"], "multiple of 16"),
        ([str(tiny_data), str(tmp_path / "o7"), "--batch", "1"], "--batch"),
        ([str(tiny_data), str(tmp_path / "o8"), "--epochs", "0"], "epochs"),
        ([str(tiny_data), str(tmp_path / "o9"), "--extractor", "magic"], "unknown denoiser"),
        ([str(tiny_data), str(a_file)], "not a folder"),
    ]


def test_train_bad_input_one_line_exit_2(tmp_path, tiny_data, scripts, capsys):
    for args, msg in _bad_train_cases(tmp_path, tiny_data):
        rc = run_main(scripts.train.main, args + ["--quiet"])
        assert rc == 2, (args, capsys.readouterr())
        assert msg in one_line_error(capsys), args


def test_train_refuses_to_mix_with_an_earlier_run(trained, tiny_data, scripts, capsys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    assert run_main(scripts.train.main, [str(tiny_data), str(copy), *TRAIN]) == 2
    assert "--overwrite" in one_line_error(capsys)
    args = [str(tiny_data), str(copy), "--epochs", "4", "--crop", "64", "--batch", "8", "--augment", "0",
            "--checkpoint-every", "3", "--quiet", "--overwrite", "--extractor", "highpass"]
    assert run_main(scripts.train.main, args) == 0
    assert sorted(p for p in os.listdir(copy) if p.startswith("chk_")) == ["chk_3.pt", "chk_4.pt"]


def test_argparse_errors_are_one_line(tmp_path, tiny_data, scripts, capsys):
    for argv in ([str(tiny_data)], [str(tiny_data), str(tmp_path / "o"), "--b", "True"],
                 [str(tiny_data), str(tmp_path / "o"), "--lr", "fast"]):
        with pytest.raises(SystemExit) as e:
            scripts.train.main(argv)
        assert e.value.code == 2
        one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu(tmp_path, tiny_data, scripts, capsys):
    assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "no CUDA device" in one_line_error(capsys)


def test_eval_bad_input_one_line_exit_2(tmp_path, trained, tiny_data, scripts, capsys):
    bad_chk = tmp_path / "badchk"
    bad_chk.mkdir()
    (bad_chk / "chk_0.pt").write_bytes(b"not a checkpoint")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    torch.save({"weights": torch.zeros(3)}, wrong / "chk_0.pt")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    small = tmp_path / "small"
    write_png(small / "a.png", np.full((16, 16, 3), 0.5))
    cases = [
        ([str(tmp_path / "nochk"), str(tiny_data)], "checkpoint folder not found"),
        ([str(tmp_path), str(tiny_data)], "no chk_"),
        ([str(bad_chk), str(tiny_data)], "not a readable checkpoint"),
        ([str(wrong), str(tiny_data)], "not a DIF fingerprint"),
        ([str(trained), str(tmp_path / "nodata")], "data not found"),
        ([str(trained), str(notes)], "not an image file"),
        ([str(trained), str(small)], "no usable images"),
        ([str(trained), str(wrong)], "no images"),
    ]
    for args, msg in cases:
        assert run_main(scripts.eval.main, args + ["--quiet"]) == 2, args
        assert msg in one_line_error(capsys), args


def test_real_process_exit_code_and_stderr(tmp_path):
    for script, args in (("train_dif.py", [str(tmp_path / "none"), str(tmp_path / "out")]),
                         ("eval_dif.py", [str(tmp_path / "none"), str(tmp_path)]),
                         ("blank_experiment.py", ["--size", "30", "30"])):
        p = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
        assert p.returncode == 2, (script, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_blank_experiment_small(tmp_path, scripts, capsys):
    out = tmp_path / "blank"
    rc = run_main(scripts.blank.main, ["--size", "32", "48", "--epochs", "6", "--snapshot-every", "3",
                                       "--output-dir", str(out), "--quiet", "--lr", "1e-3"])
    assert rc == 0
    assert {"gray_image.png", "gray_fft.png", "gray_experiment.png", "history.npz", "loss.json"} <= set(os.listdir(out))
    h = np.load(out / "history.npz")
    assert h["steps"].tolist() == [3, 6] and h["images"].shape == (2, 32, 48, 3)
    assert len(json.loads((out / "loss.json").read_text())["mse"]) == 6


def test_official_sd14_fingerprint_evaluates(shared_data, scripts, tmp_path, capsys):
    j = tmp_path / "sd14.json"
    args = [str(shared_data / "dif_official" / "checks" / "sd14"), str(shared_data / "dif_official" / "samples" / "sd14"),
            "0", "--json", str(j), "--quiet", "--extractor", "wavelet-dwt"]
    assert run_main(scripts.eval.main, args) == 0
    out = capsys.readouterr().out
    assert "Real Acc." in out
    m = json.loads(j.read_text())
    assert m["n_real"] == 10 and m["n_fake"] == 10
    assert m["auc"] > 0.9  # decimated wavelet residual + the authors' SD1.4 fingerprint (measured 0.98)
    capsys.readouterr()
    assert run_main(scripts.eval.main, args[:-2] + ["--centres", "paper"]) == 0  # the default extractor
    err = capsys.readouterr().err
    assert "records no residual extractor" in err and "scoring with dncnn" in err
    assert json.loads(j.read_text())["auc"] > 0.9  # the shipped DnCNN (measured 1.00)


def test_shipped_dncnn_detects_dalle2_with_the_authors_fingerprint(shared_data, scripts, tmp_path):
    """The shipped DnCNN's residual carries what the authors' DALL-E 2 fingerprint was trained on
    (AUC 0.89 measured; every filter and the grey-trained DnCNN stay near 0.5)."""
    j = tmp_path / "dalle2.json"
    args = [str(shared_data / "dif_official" / "checks" / "dalle_2"), str(shared_data / "dif_official" / "samples" / "dalle_2"),
            "--json", str(j), "--quiet"]
    assert run_main(scripts.eval.main, args) == 0
    assert json.loads(j.read_text())["auc"] > 0.8


# ----------------------------------------------------------------------------- robustness and lineage

def test_calibration_file_and_score_choices(trained, tiny_data, scripts, tmp_path, capsys):
    cal = json.loads((trained / "calibration.json").read_text())
    assert set(cal) >= {"paper", "train", "max_shift"} and set(cal["train"]) == {"corr", "shift"}
    for extra in (["--score", "shift"], ["--score", "corr", "--centres", "train"], ["--score", "shift", "--max-shift", "2"]):
        j = tmp_path / "s.json"
        assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--json", str(j), "--quiet", *extra]) == 0
        m = json.loads(j.read_text())
        assert m["score"] == extra[1] and 0 <= m["accuracy"] <= 1
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--centres", "cv", "--quiet"]) == 2
    assert "--calibrate cv" in one_line_error(capsys)


def test_single_perturbation_json_has_the_clean_keys(trained, tiny_data, scripts, tmp_path, capsys):
    j1, j2 = tmp_path / "clean.json", tmp_path / "p.json"
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--json", str(j1), "--quiet"]) == 0
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--perturb", "jpeg90", "--json", str(j2),
                                        "--quiet"]) == 0
    clean, pert = json.loads(j1.read_text()), json.loads(j2.read_text())
    assert set(clean) <= set(pert) and pert["perturbation"] == "jpeg90"
    # the clean run's metrics are not lost: every condition under "perturbations", as with several
    assert set(pert["perturbations"]) == {"clean", "jpeg90"}
    assert pert["perturbations"]["clean"]["auc"] == clean["auc"] and pert["perturbations"]["jpeg90"]["auc"] == pert["auc"]


def test_perturbation_suite_table_csv_and_plot(trained, tiny_data, scripts, tmp_path, capsys):
    c, p, j = tmp_path / "r.csv", tmp_path / "plots", tmp_path / "r.json"
    rc = run_main(scripts.eval.main, [str(trained), str(tiny_data), "--perturb", "all", "--csv", str(c), "--plots", str(p),
                                      "--json", str(j), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    for name in ("clean", "jpeg50", "resize0.5", "shift1", "rot5", "crop"):
        assert f"\n{name}" in out
    rows = c.read_text().splitlines()
    assert rows[0].startswith("perturbation,accuracy") and len(rows) == 1 + 13
    assert (p / "robustness.png").is_file()
    assert set(json.loads(j.read_text())["perturbations"]) >= {"clean", "jpeg95", "crop"}
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--perturb", "wobble"]) == 2
    assert "unknown perturbation" in one_line_error(capsys)


def test_augment_and_reencode_are_recorded_and_applied(tmp_path, tiny_data, scripts, capsys):
    out = tmp_path / "c"
    args = [str(tiny_data), str(out), *TRAIN[:-3], "--extractor", "highpass", "--reencode", "jpeg:80", "--quiet"]  # default augment
    assert run_main(scripts.train.main, args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["augment"] == 2 and cfg["reencode"] == "jpeg:80"
    assert len(torch.load(out / "chk_4.pt", weights_only=True)["Loss"]) == 4 * 5  # 36 residuals in batches of 8
    capsys.readouterr()
    assert run_main(scripts.eval.main, [str(out), str(tiny_data), "--quiet"]) == 0
    assert "re-encoded jpeg:80" in capsys.readouterr().out
    assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "d"), "--reencode", "gif", "--quiet"]) == 2
    assert "--reencode" in one_line_error(capsys)


def test_cross_detection_cli(tmp_path, scripts, capsys):
    root = tmp_path / "gens"
    for i, g in enumerate(("gan_a", "gan_b")):
        make_dataset(root / g, n=4, size=64, seed=10 + i)
    fps = tmp_path / "fps"
    for g in ("gan_a", "gan_b"):
        assert run_main(scripts.train.main, [str(root / g), str(fps / g), *TRAIN, "--extractor", "highpass"]) == 0
    j, c, p = tmp_path / "x.json", tmp_path / "x.csv", tmp_path / "plots"
    rc = run_main(scripts.eval.main, [str(fps), str(root), "--cross", "--json", str(j), "--csv", str(c),
                                      "--plots", str(p), "--perturb", "jpeg90", "--quiet"])
    assert rc == 0
    m = json.loads(j.read_text())
    assert m["clean"]["fingerprints"] == ["gan_a", "gan_b"] and np.array(m["clean"]["accuracy"]).shape == (2, 2)
    assert "jpeg90" in m and np.array(m["similarity"]["matrix"]).shape == (2, 2)
    assert len(c.read_text().splitlines()) == 1 + 2 * 4
    for f in ("cross_accuracy.png", "cross_auc.png", "cross_accuracy_jpeg90.png", "similarity.png", "fingerprints.png"):
        assert (p / f).is_file(), f
    assert run_main(scripts.eval.main, [str(tmp_path), str(root), "--cross", "--quiet"]) == 2
    assert "no sub-folders with chk_" in one_line_error(capsys)


def test_eval_refuses_to_mix_extractors_unless_told(trained, tiny_data, scripts, capsys):
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--extractor", "wavelet"]) == 2
    line = one_line_error(capsys)
    assert "mixes residual extractors" in line and "--allow-mixed-extractor" in line
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--extractor", "wavelet",
                                        "--allow-mixed-extractor"]) == 0
    assert "scoring with wavelet" in capsys.readouterr().err
    # the same extractor spelled differently is not a mix
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--extractor", "highpass:1.0"]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_extractor_auto_chooses_out_of_fold_and_records_it(tiny_data, tmp_path, capsys):
    """auto, train_dif.py's default, trains fold fingerprints (2 folds unless auto:K, not --folds)
    and records every candidate in config.json; the saved fingerprint evaluates with the extractor
    chosen; a class with fewer images than folds keeps the fixed default, with a note; a bad auto
    spec is one line, exit 2."""
    import json
    import shutil

    import eval_dif
    import train_dif
    from dif.choose import AUTO_FOLD_EPOCHS, AUTO_FOLDS, CANDIDATES
    from dif.cli import run_main
    from dif.extractors import DEFAULT_EXTRACTOR

    assert AUTO_FOLDS == 2 and AUTO_FOLD_EPOCHS == 5
    out = tmp_path / "auto"
    assert run_main(train_dif.main, [str(tiny_data), str(out), "--folds", "4", "--epochs", "3",  # no --extractor
                                     "--crop", "32", "--batch", "8", "--augment", "0", "--quiet"]) == 0
    assert "--extractor auto chose" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    choice = cfg["extractor_choice"]
    assert choice["folds"] == 2  # --folds sizes --calibrate cv only
    assert choice["fold_epochs"] == 3  # AUTO_FOLD_EPOCHS 5, capped at the fingerprint's --epochs
    names = [c["extractor"].split(":")[0] for c in choice["candidates"]]
    skipped = choice.get("skipped", [])
    assert names + skipped == list(CANDIDATES)  # cheapest first; the rest only when none of it could win
    if skipped:
        assert max(c["score"] for c in choice["candidates"]) >= 1 - choice["tie"]
    assert all(c["score"] == c["auc"] for c in choice["candidates"])  # the clean out-of-fold AUC is the rule
    aucs = {c["extractor"]: c["score"] for c in choice["candidates"]}
    assert all(0 <= v <= 1 for v in aucs.values())
    assert cfg["extractor"] == choice["chosen"] and choice["chosen"] in aucs
    assert aucs[choice["chosen"]] >= max(aucs.values()) - choice["tie"]
    # the cheapest of the candidates within the tie of the best
    assert choice["chosen"] == next(e for e, v in aucs.items() if v >= max(aucs.values()) - choice["tie"])
    assert run_main(eval_dif.main, [str(out), str(tiny_data), "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())
    three = tmp_path / "auto3"
    assert run_main(train_dif.main, [str(tiny_data), str(three), "--extractor", "auto:3:1", "--epochs", "2",
                                     "--crop", "32", "--batch", "8", "--augment", "0", "--quiet"]) == 0
    choice = json.loads((three / "config.json").read_text())["extractor_choice"]
    assert (choice["folds"], choice["fold_epochs"]) == (3, 1)
    # one real image: nothing to score out of fold -> the fixed default, said in a note
    few = tmp_path / "few"
    shutil.copytree(tiny_data, few)
    for p in sorted((few / "0_real").iterdir())[1:]:
        p.unlink()
    capsys.readouterr()
    assert run_main(train_dif.main, [str(few), str(tmp_path / "fb"), "--epochs", "2", "--crop", "32", "--batch", "4",
                                     "--augment", "0", "--quiet"]) == 0
    assert "nothing to score out of fold" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "fb" / "config.json").read_text())
    assert cfg["extractor"].split(":")[0] == DEFAULT_EXTRACTOR and "fallback" in cfg["extractor_choice"]
    for bad in ("auto:1", "auto:x", "auto:2:-1", "auto:2:x", "auto:2:3:4", "auto:meandiff"):
        assert run_main(train_dif.main, [str(tiny_data), str(tmp_path / "bad"), "--extractor", bad, "--quiet"]) == 2
        assert "auto" in one_line_error(capsys)
    assert not (tmp_path / "bad").exists()


def test_auto_stops_when_no_candidate_can_win_and_keeps_the_tie_band(tiny_data, monkeypatch):
    """The choice with scripted out-of-fold AUCs: the leader is the cheapest within the tie of the
    best; candidates after a leader at >= 1 - tie are not scored (none could win); a candidate that
    comes back as leader when a dearer one raises the best still has its residuals."""
    import dif.choose as choose
    from dif.config import DIFConfig
    from dif.data import find_labelled

    data = find_labelled(tiny_data)
    cfg = DIFConfig(crop=32, epochs=1, augment=0, tiles=1)
    cands = ("highpass", "highpass:2", "wavelet-dwt")
    made, compute = [], choose.config_residuals

    def scripted(values):  # a new choice: its own caches are watched
        made.clear()
        it = iter(values)
        monkeypatch.setattr(choose, "out_of_fold_aucs", lambda *a, **k: {"clean": next(it)})

    def watched(*a, **k):  # while a candidate's residuals are computed, no earlier cache is in memory
        assert all(t.cache.residuals is None for t in made)
        made.append(compute(*a, **k))
        return made[-1]

    monkeypatch.setattr(choose, "config_residuals", watched)
    scripted([0.900, 0.904, 0.908])  # the best rises past the first: the second comes back as leader
    chosen, ts, rep = choose.choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=cands)
    assert chosen.startswith("highpass:2") and "skipped" not in rep and len(made) == 3
    # parked on disk while wavelet-dwt's were computed, read back whole
    direct = compute(data.paths, data.labels, choose.build_extractor("highpass:2"), cfg, "cpu")
    assert torch.equal(ts.cache.residuals, direct.cache.residuals)
    scripted([0.999, 0.2, 0.2])  # within the tie of 1: nothing after it is scored
    chosen, ts, rep = choose.choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=cands)
    assert chosen.startswith("highpass") and rep["skipped"] == ["highpass:2", "wavelet-dwt"]
    assert len(rep["candidates"]) == 1
    scripted([0.999, 1.0, 0.2])  # stop_early=False (the worst case's cost): every one scored, the same rule
    chosen, ts, rep = choose.choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=cands, stop_early=False)
    assert chosen.startswith("highpass") and not chosen.startswith("highpass:2") and "skipped" not in rep
    assert len(rep["candidates"]) == 3 and len(made) == 3
    assert all(0 <= c["residual_seconds"] <= c["seconds"] for c in rep["candidates"])
    scripted([0.990, 1.0, 0.2])  # 0.990 is not within the tie of 1: the second is scored, wins, and stops it
    chosen, ts, rep = choose.choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=cands)
    assert chosen.startswith("highpass:2") and rep["skipped"] == ["wavelet-dwt"]


def test_denoiser_ensemble_averages_scaled_member_scores(tiny_data, tmp_path, scripts, capsys):
    """--extractor ensemble:A,B trains one ordinary fingerprint per extractor; an image's score is the
    mean of each member's (oriented score - threshold) / |centre gap| (checked against the members
    loaded on their own), threshold 0; it detects the tiny set; bad specs and --extractor at
    evaluation answer one line, exit 2."""
    from dif.data import find_labelled, load_image
    from dif.methods import load_method

    out = tmp_path / "ens"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), "--extractor", "ensemble:highpass,wavelet-dwt",
                                         "--epochs", "10", "--crop", "32", "--batch", "8", "--augment", "0",
                                         "--quiet"]) == 0
    assert "highpass" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "dif-ensemble" and cfg["members"] == ["m0_highpass", "m1_wavelet-dwt"]
    ens = load_method(out)
    members = [load_method(out / n) for n in cfg["members"]]  # each member is a plain DIF folder
    assert [m.name for m in members] == ["dif", "dif"] and ens.threshold == 0.0
    # a member is the fingerprint that --extractor highpass alone makes with the same flags
    alone = tmp_path / "alone"
    assert run_main(scripts.train.main, [str(tiny_data), str(alone), "--extractor", "highpass", "--epochs", "10",
                                         "--crop", "32", "--batch", "8", "--augment", "0", "--quiet"]) == 0
    torch.testing.assert_close(load_method(alone).state.fingerprint, members[0].state.fingerprint, rtol=0, atol=0)
    data = find_labelled(tiny_data)
    imgs = [load_image(p) for p in data.paths]
    by_hand = np.mean([(m.score(imgs) - m.threshold) / abs(m.detector.mu_fake - m.detector.mu_real)
                       for m in members], axis=0)
    got = ens.score(imgs)
    np.testing.assert_allclose(got, by_hand, rtol=1e-9, atol=1e-12)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(data.labels, got) >= 0.8  # 0.89 measured (members 1.00 and 0.72)
    # the shared harness evaluates it like any method
    assert run_main(scripts.eval.main, [str(out), str(tiny_data), "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["method"] == "dif-ensemble" and m["threshold"] == 0.0 and len(m["members"]) == 2
    assert m["auc"] == pytest.approx(roc_auc_score(data.labels, got))
    capsys.readouterr()
    for bad in ("ensemble:highpass", "ensemble:highpass,auto", "ensemble:highpass,highpass"):
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "bad"), "--extractor", bad, "--quiet"]) == 2
        assert "ensemble" in one_line_error(capsys)
    assert run_main(scripts.eval.main, [str(out), str(tiny_data), "--extractor", "wavelet", "--quiet"]) == 2
    assert "drop --extractor" in one_line_error(capsys)
