"""Hostile and careless input, as a new user would give it: every case is one line on stderr and
exit code 2, checked before any work, and nothing of an earlier run is lost or mixed."""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dif.cli import run_main
from dif.checkpoint import save_checkpoint
from dif.extractors import DnCNN as NetDnCNN, save_dncnn
from dif.fingerprint import TrainState
from conftest import ROOT, make_dataset

TRAIN = ["--epochs", "4", "--crop", "64", "--batch", "8", "--checkpoint-every", "2", "--augment", "0", "--quiet",
         "--extractor", "highpass"]


def one_line_error(capsys) -> str:
    """Exactly one error line; only per-file skip warnings may come before it; nothing on stdout
    but what was printed before the work (no training or scoring output)."""
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert lines and "Traceback" not in cap.err, cap.err
    assert all(l.startswith("WARNING: skipping") for l in lines[:-1]), lines
    assert lines[-1].startswith(("error:", "train_dif.py: error:", "eval_dif.py: error:")) or ": error:" in lines[-1], lines
    return lines[-1]


def _writable(folder: Path) -> bool:
    try:
        fd, p = tempfile.mkstemp(dir=folder)
        os.close(fd)
        os.unlink(p)
        return True
    except OSError:
        return False


@pytest.fixture
def readonly(tmp_path):
    """A folder nobody can write into: a chmod 555 folder for a normal user; for root (who ignores
    permission bits) the kernel's read-only /sys."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    d = Path("/sys")
    assert d.is_dir() and not _writable(d), "no read-only folder to test with"
    yield d


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, scripts):
    out = tmp_path_factory.mktemp("hostile") / "check"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), *TRAIN]) == 0
    return out


# ----------------------------------------------------------------------------- outputs checked first

def test_eval_output_locations_are_checked_before_any_work(trained, tiny_data, scripts, capsys, tmp_path, readonly,
                                                           monkeypatch):
    import dif.evaluate

    def no_work(*a, **k):
        raise AssertionError("evaluation started before the outputs were checked")

    monkeypatch.setattr(dif.evaluate, "score_images", no_work)
    a_dir = tmp_path / "adir"
    a_dir.mkdir()
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    cases = [(["--json", str(a_dir)], "is a folder"), (["--csv", str(a_dir)], "is a folder"),
             (["--json", str(readonly / "m.json")], "not writable"), (["--csv", str(readonly / "m.csv")], "not writable"),
             (["--plots", str(readonly / "plots")], "not writable"), (["--plots", str(a_file)], "not a folder"),
             (["--json", str(a_file / "m.json")], "not a folder"),
             (["--json", str(tmp_path / "same"), "--csv", str(tmp_path / "same")], "the same file"),
             (["--resume", str(a_dir)], "is a folder"), (["--resume", str(readonly / "r.csv")], "not writable")]
    for extra, msg in cases:
        assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", *extra]) == 2, extra
        assert msg in one_line_error(capsys), extra
    assert run_main(scripts.eval.main, [str(trained), str(tmp_path), "--cross", "--json", str(a_dir)]) == 2
    assert "is a folder" in one_line_error(capsys)


def test_missing_output_folders_are_created(trained, tiny_data, scripts, tmp_path):
    j, c = tmp_path / "missing" / "dir" / "m.json", tmp_path / "other" / "rows.csv"
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--json", str(j), "--csv", str(c)]) == 0
    assert json.loads(j.read_text())["n_real"] == 6 and len(c.read_text().splitlines()) == 13


def test_train_and_blank_output_locations_are_checked_before_any_work(tiny_data, scripts, capsys, readonly, monkeypatch):
    import dif.choose

    # every training's residuals go through choose.config_residuals (fixed extractor or auto)
    monkeypatch.setattr(dif.choose, "config_residuals", lambda *a, **k: pytest.fail("work started"))
    for target in (readonly / "newcheck", readonly):
        assert run_main(scripts.train.main, [str(tiny_data), str(target), *TRAIN]) == 2
        line = one_line_error(capsys)
        assert "not writable" in line or "already holds" in line or "cannot create" in line, line
    import dif.blank

    monkeypatch.setattr(dif.blank, "UNet", lambda *a, **k: pytest.fail("work started"))
    assert run_main(scripts.blank.main, ["--output-dir", str(readonly / "blank"), "--quiet"]) == 2
    assert "not writable" in one_line_error(capsys)


# ----------------------------------------------------------------------------- non-finite values

def _nan_tiff(path: Path, size: int = 64) -> Path:
    arr = np.full((size, size), 0.5, dtype=np.float32)
    arr[3, 5] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="F").save(path)
    return path


def test_a_nan_pixel_is_skipped_never_a_nan_fingerprint_or_score(tmp_path, scripts, capsys):
    data = make_dataset(tmp_path / "d", n=4, size=64, seed=3)
    _nan_tiff(data / "1_fake" / "nan.tif")
    out = tmp_path / "c"
    assert run_main(scripts.train.main, [str(data), str(out), *TRAIN]) == 0
    err = capsys.readouterr().err
    assert "nan.tif" in err and "NaN" in err
    fp = torch.load(out / "chk_4.pt", weights_only=True)["Fingerprint"]
    assert torch.isfinite(fp).all()
    assert "nan.tif" in json.dumps(json.loads((out / "train_files.json").read_text())["skipped"])
    j = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(out), str(data), "--quiet", "--json", str(j)]) == 0
    m = json.loads(j.read_text())
    assert m["skipped"] == 1 and m["n_fake"] == 4 and np.isfinite(m["auc"])
    capsys.readouterr()
    assert run_main(scripts.eval.main, [str(out), str(data / "1_fake" / "nan.tif"), "--quiet"]) == 2
    assert "no usable images" in one_line_error(capsys)


def test_numeric_flags_are_finite_and_in_range(tiny_data, scripts, capsys, tmp_path):
    cases = [(["--lr", "inf"], "finite"), (["--lr", "nan"], "finite"), (["--lr", "-1"], "--lr"),
             (["--seed", "-5000"], "--seed"), (["--seed", str(10**20)], "--seed"), (["--epochs", "1e9"], "whole number"),
             (["--residual-scale", "2"], "--residual-scale"), (["--augment", "-1"], "--augment"), (["--margin", "0"], "--margin"),
             (["--extractor", "highpass:inf"], "highpass sigma"), (["--extractor", "highpass:1e12"], "highpass sigma"),
             (["--extractor", "wavelet:1e9"], "wavelet sigma")]
    for extra, msg in cases:
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "o"), *TRAIN, *extra]) == 2, extra
        assert msg in one_line_error(capsys), extra
    assert not (tmp_path / "o").exists()


def test_a_diverging_run_saves_nothing(tiny_data, scripts, capsys, tmp_path):
    out = tmp_path / "c"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), *TRAIN, "--lr", "10", "--epochs", "30"]) in (0, 2)
    if out.exists():  # it did not diverge: then every saved fingerprint is finite
        for p in out.glob("chk_*.pt"):
            assert torch.isfinite(torch.load(p, weights_only=True)["Fingerprint"]).all()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    from dif.errors import DIFError

    with pytest.raises(DIFError, match="NaN"):
        save_checkpoint(tmp_path / "x.pt", TrainState(torch.full((1, 3, 16, 16), float("nan")), [0.0], [1.0], [0.0]), "x")


# ----------------------------------------------------------------------------- run folders

def test_overwrite_keeps_the_old_run_until_the_new_one_is_complete(trained, tiny_data, scripts, tmp_path, monkeypatch):
    import dif.methods.dif

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    real_train = dif.methods.dif.train_fingerprint

    def killed(*a, **k):  # the first checkpoint is written, then the run dies
        k["on_epoch_end"](TrainState(torch.rand(1, 3, 64, 64), [0.0], [0.1], [1.0], 2))
        raise KeyboardInterrupt

    monkeypatch.setattr(dif.methods.dif, "train_fingerprint", killed)
    assert run_main(scripts.train.main, [str(tiny_data), str(copy), *TRAIN, "--overwrite"]) == 130
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["copy"]  # no partial folder or lock left behind
    monkeypatch.setattr(dif.methods.dif, "train_fingerprint", real_train)
    args = [str(tiny_data), str(copy), *TRAIN, "--epochs", "3", "--checkpoint-every", "3", "--overwrite"]
    assert run_main(scripts.train.main, args) == 0
    names = set(os.listdir(copy))
    assert "chk_3.pt" in names and "chk_2.pt" not in names and "chk_4.pt" not in names
    assert json.loads((copy / "config.json").read_text())["epochs"] == 3
    assert (copy / "calibration.json").read_bytes() != before["calibration.json"]


def test_files_of_an_earlier_run_or_of_the_user_are_never_overwritten(trained, tiny_data, scripts, capsys, tmp_path):
    only_config = tmp_path / "a"
    only_config.mkdir()
    shutil.copy(trained / "config.json", only_config / "config.json")
    assert run_main(scripts.train.main, [str(tiny_data), str(only_config), *TRAIN]) == 2
    assert "--overwrite" in one_line_error(capsys)
    mine = tmp_path / "b"
    shutil.copytree(trained, mine)
    (mine / "my_notes.txt").write_text("keep me")
    assert run_main(scripts.train.main, [str(tiny_data), str(mine), *TRAIN, "--overwrite"]) == 2
    assert "my_notes.txt" in one_line_error(capsys)
    assert (mine / "my_notes.txt").read_text() == "keep me"


def test_a_second_run_into_the_same_folder_is_refused(tiny_data, scripts, capsys, tmp_path):
    from dif.atomic import RunFolder

    target = tmp_path / "c"
    with RunFolder(target, False, lambda n: True):  # another run holds the folder
        assert run_main(scripts.train.main, [str(tiny_data), str(target), *TRAIN]) == 2
        assert "another run is writing" in one_line_error(capsys)
    assert run_main(scripts.train.main, [str(tiny_data), str(target), *TRAIN]) == 0


def test_two_processes_at_once(tiny_data, tmp_path):
    """Two real trainings into one CHECK_DIR: one completes, the other is refused with one line."""
    target = tmp_path / "c"
    cmd = [sys.executable, str(ROOT / "train_dif.py"), str(tiny_data), str(target), *TRAIN, "--epochs", "20"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    errs = [e for (_, e), p in zip(outs, procs) if p.returncode == 2]
    assert codes == [0, 2], outs
    assert len(errs[0].strip().splitlines()) == 1 and ("another run" in errs[0] or "already holds" in errs[0]), errs
    assert json.loads((target / "config.json").read_text())["epochs"] == 20


# ----------------------------------------------------------------------------- crafted files

def _check_folder(tmp_path, name, fp_size=64, **payload_changes):
    d = tmp_path / name
    d.mkdir()
    save_checkpoint(d / "chk_4.pt", TrainState(torch.rand(1, 3, fp_size, fp_size), [0.0, 0.01], [0.05, 0.06],
                                                [1.0, 0.5], 4), "highpass:1")
    if payload_changes:
        raw = torch.load(d / "chk_4.pt", weights_only=True)
        raw.update(payload_changes)
        torch.save(raw, d / "chk_4.pt")
    return d


def _deep_authors_file(path: Path, depth: int = 100_000) -> Path:
    """A torch zip whose pickle is a list nested ``depth`` deep."""
    buf = io.BytesIO()
    torch.save({"a": 1}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
            dst.writestr(info, data)
    return path


class DnCNN:  # pickled under this name: a "DnCNN" whose _modules is a list
    def __init__(self):
        self._modules = [1, 2]


def test_crafted_files_are_one_line_errors(tmp_path, tiny_data, scripts, capsys):
    folders = []
    for i, hypers in enumerate(({"Epochs": [1, 2]}, {"Crop Size": ()}, {"LR": "fast"})):
        d = _check_folder(tmp_path, f"h{i}")
        (d / "train_hypers.pt").write_bytes(pickle.dumps(hypers))
        folders.append((d, "train_hypers.pt"))
    for i, cfg in enumerate(([1, 2], {"epochs": "abc"}, {"crop": 64.5}, {"lr": None})):
        d = _check_folder(tmp_path, f"c{i}")
        (d / "config.json").write_text(json.dumps(cfg))
        folders.append((d, "config.json"))
    d = _check_folder(tmp_path, "cal")
    (d / "calibration.json").write_text("[]")
    folders.append((d, "calibration.json"))
    d = _check_folder(tmp_path, "cal2")
    (d / "calibration.json").write_text(json.dumps({"train": {"corr": [0.1, "x"]}}))
    folders.append((d, "calibration.json"))
    folders.append((_check_folder(tmp_path, "epoch", Epoch="abc"), "Epoch"))
    folders.append((_check_folder(tmp_path, "nanreal", **{"Train Real": [float("nan")] * 3}), "Train Real"))
    folders.append((_check_folder(tmp_path, "tiny", fp_size=1), "sides"))
    for folder, msg in folders:
        assert run_main(scripts.eval.main, [str(folder), str(tiny_data), "--quiet"]) == 2, folder
        assert msg in one_line_error(capsys), folder

    torch.manual_seed(0)
    net = NetDnCNN(layers=3, features=4)
    save_dncnn(tmp_path / "w.pt", net)
    base = torch.load(tmp_path / "w.pt", weights_only=True)
    nan_state = {k: v.clone() for k, v in base["state_dict"].items()}
    next(iter(nan_state.values())).fill_(float("nan"))
    weights = {"missing": {k: v for k, v in base.items() if k != "channels"}, "channels": dict(base, channels="abc"),
               "state": dict(base, state_dict=None), "huge": dict(base, features=10**6), "nan": dict(base, state_dict=nan_state),
               "mean": dict(base, mean_residual="x")}
    for name, payload in weights.items():
        torch.save(payload, tmp_path / f"{name}.pt")
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "o"), *TRAIN[:-1],
                                             f"dncnn:{tmp_path / name}.pt"]) == 2, name
        line = one_line_error(capsys)
        assert str(tmp_path / name) in line, (name, line)
    _deep_authors_file(tmp_path / "deep.pt")
    torch.save({"trainer": DnCNN()}, tmp_path / "modlist.pt")
    for name in ("deep", "modlist"):
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / "o"), *TRAIN[:-1],
                                             f"authors:{tmp_path / name}.pt"]) == 2, name
        assert "no DnCNN weights" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_booby_trapped_checkpoint_is_named_for_what_it_is(tmp_path, tiny_data, scripts, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    d = tmp_path / "evil"
    d.mkdir()
    torch.save({"Fingerprint": torch.rand(1, 3, 64, 64), "x": Evil()}, d / "chk_0.pt")
    assert run_main(scripts.eval.main, [str(d), str(tiny_data), "--quiet"]) == 2
    line = one_line_error(capsys)
    assert "not a safe checkpoint" in line and "weights_only" not in line and "\x1b" not in line and len(line) < 300
    assert not marker.exists()


# ----------------------------------------------------------------------------- folders and names

def test_unreadable_folder(tmp_path, tiny_data, trained, scripts, capsys, monkeypatch):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    if os.geteuid() == 0:  # root reads a chmod 000 folder anyway: make the listing fail as it would for a user
        import dif.data

        real_scandir = os.scandir

        def scandir(path):
            if Path(path) == data / "0_real":
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(dif.data.os, "scandir", scandir)
    else:
        (data / "0_real").chmod(0)
    try:
        assert run_main(scripts.train.main, [str(data), str(tmp_path / "o"), *TRAIN]) == 2
        assert "cannot read folder" in one_line_error(capsys)
        assert run_main(scripts.eval.main, [str(trained), str(data), "--quiet"]) == 2
        assert "cannot read folder" in one_line_error(capsys)
    finally:
        (data / "0_real").chmod(0o755)


def test_any_file_name_goes_into_the_csv(tmp_path, trained, tiny_data, scripts):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    odd = os.fsdecode(b"\xff\xfe odd,\"name\".png")
    shutil.copy(next((data / "0_real").iterdir()), data / "0_real" / odd)
    c, j = tmp_path / "rows.csv", tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(trained), str(data), "--quiet", "--csv", str(c), "--json", str(j)]) == 0
    import csv

    rows = list(csv.reader(c.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 1 + 13 and any(r[0].endswith('\\xff\\xfe odd,"name".png') for r in rows)
    assert json.loads(j.read_text())["n_real"] == 7
    assert run_main(scripts.eval.main, [str(trained), str(data / "0_real"), "--quiet", "--csv", str(c)]) == 0


def test_other_files_are_counted_and_reported(tmp_path, trained, tiny_data, scripts, capsys):
    data = tmp_path / "d"
    shutil.copytree(tiny_data, data)
    (data / "1_fake" / "drawing.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (data / "0_real" / "folder.jpg").mkdir()
    os.mkfifo(data / "0_real" / "pipe.png")
    (data / "0_real" / ".DS_Store").write_bytes(b"x")
    j = tmp_path / "m.json"
    assert run_main(scripts.eval.main, [str(trained), str(data), "--quiet", "--json", str(j)]) == 0
    err = capsys.readouterr().err
    for name, why in (("drawing.svg", "unsupported file type (.svg)"), ("folder.jpg", "not a regular file"),
                      ("pipe.png", "not a regular file")):
        assert f"{name}: {why}" in err, err
    assert ".DS_Store" not in err
    m = json.loads(j.read_text())
    assert m["skipped"] == 3 and m["n_real"] == 6 and m["n_fake"] == 6


def test_epoch_after_a_flag(trained, tiny_data, scripts, tmp_path):
    j = tmp_path / "e.json"
    assert run_main(scripts.eval.main, [str(trained), "--quiet", str(tiny_data), "--json", str(j), "2"]) == 0
    assert json.loads(j.read_text())["checkpoint"].endswith("chk_2.pt")
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "2"]) == 0


# ----------------------------------------------------------------------------- reproducible bytes

def test_saves_are_byte_reproducible(tmp_path, tiny_data, scripts):
    torch.manual_seed(0)
    net = NetDnCNN(layers=3, features=4)
    save_dncnn(tmp_path / "a.pt", net)
    save_dncnn(tmp_path / "other_name.pt", net)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other_name.pt").read_bytes()
    for name in ("r1", "r2"):
        assert run_main(scripts.train.main, [str(tiny_data), str(tmp_path / name), *TRAIN]) == 0
    for f in ("chk_2.pt", "chk_4.pt", "config.json", "calibration.json"):
        assert (tmp_path / "r1" / f).read_bytes() == (tmp_path / "r2" / f).read_bytes(), f


# ----------------------------------------------------------------------------- benchmarks

@pytest.mark.parametrize("script,args,msg", [
    ("paper_table.py", ["DATA", "--folds", "0"], "--folds"),
    ("speed.py", ["eval", "--images", "-1"], "--images"),
    ("speed.py", ["train", "--crop", "50"], "multiple of 16"),
    ("speed.py", ["deepfeaturex", "--epochs", "0"], "--epochs"),
    ("lineage.py", ["released", "--bootstrap", "-1"], "--bootstrap"),
    ("lineage.py", ["sweep", "--out", "o", "--seeds", "0,x"], "--seeds"),
    ("compare_methods.py", ["--folds", "1"], "--folds"),
    ("memory.py", ["processes", "--images", "1"], "--images"),
    ("memory.py", ["streaming", "--sizes", "0"], "--sizes"),
    # a name that selects nothing is refused, never an empty table with exit 0
    ("compare_methods.py", ["--methods", "bogus"], "--methods bogus: no such methods"),
    ("compare_methods.py", ["--only", "crn,bogus"], "no such generators: bogus"),
    ("extractor_choice.py", ["SHARED/cnndetection", "--only", "bogus"], "no such generators: bogus"),
    ("extractor_choice.py", ["SHARED/cnndetection", "--extractors", "highpass,auto", "--auto-perturb", "jpeg75"],
     "list every candidate"),
    ("extractor_choice.py", ["SHARED/cnndetection", "--auto-perturb", "bogus"], "bogus"),
    ("artificial.py", ["transfer", "--reread"], "--reread"),
    ("artificial.py", ["transfer", "--reread", "--samples-dir", "DATA/nowhere"], "no samples in"),
    ("artificial.py", ["transfer", "--size", "100"], "power of 2"),
    ("paper_table.py", ["SHARED/cnndetection", "--only", "crn,bogus"], "no such generators: bogus"),
    ("recipes.py", ["compare", "DATA", "--out", "r.json", "--recipe", "bogus"], "--recipe"),
    ("recipes.py", ["compare", "DATA", "--out", "r.json", "--recipe", "x=--augment-kinds jpeg,zoom"], "zoom"),
    ("recipes.py", ["compare", "DATA", "--out", "r.json", "--recipe", "x=--loss pull"], "--loss"),
    ("recipes.py", ["compare", "DATA", "--out", "r.json"], "needs train/ and test/"),
    ("recipes.py", ["compare", "DATA", "--out", "r.json", "--extractor", "bogus"], "bogus"),
    ("trace_probe.py", ["DATA"], "needs train/ and test/"),
    ("trace_probe.py", ["DATA", "--extractors", "bogus"], "bogus"),
    ("trace_probe.py", ["DATA", "--period", "1"], "--period"),
    ("trace_probe.py", ["DATA", "--perturb", "bogus"], "bogus"),
    ("compare_methods.py", ["SHARED", "--dif-extractor", "bogus"], "bogus"),
    ("compare_methods.py", ["SHARED", "--dif-extractor", "auto:1"], "auto:K"),
    ("demo_seeds.py", ["DATA", "--out", "r.json", "--seeds", "0,x"], "--seeds"),
    ("demo_seeds.py", ["DATA", "--out", "/sys/r.json"], "--out"),
    ("demo_seeds.py", ["DATA", "--out", "r.json", "--demo-args", "--size 17"], "dif.demo failed: --size"),
    ("artificial.py", ["quality", "--photos", "DATA/nowhere", "--whole"], "is not a folder"),
    ("artificial.py", ["quality", "--photos", "DATA", "--whole"], "no readable photo"),
])
def test_benchmarks_answer_bad_input_in_one_line(tmp_path, shared_data, script, args, msg):
    args = [str(tmp_path) + a[4:] if a.startswith("DATA") else a.replace("SHARED", str(shared_data)) for a in args]
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and msg in p.stderr and "Traceback" not in p.stderr, p.stderr
