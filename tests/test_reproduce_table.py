"""benchmarks/reproduce_table.py end to end on tiny data (a smoke test of the paper-table driver)."""
import json
import subprocess
import sys

from conftest import ROOT, make_dataset


def test_reproduce_table_tiny(tmp_path):
    root = tmp_path / "gens"
    make_dataset(root / "stylegan", n=4, size=48, seed=1)
    make_dataset(root / "mygan", n=4, size=48, seed=2)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reproduce_table.py"), str(root), "--folds", "2", "--epochs", "2",
           "--crop", "32", "--batch", "8", "--denoiser", "highpass", "--perturb", "jpeg90", "--calibrate-folds", "2",
           "--save-fingerprints", str(tmp_path / "fps"), "--out", str(out), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    table = (out / "table.txt").read_text()
    assert "StyleGAN" in table and "91.5" in table and "missing" in table and "mygan" in table
    res = json.loads((out / "results.json").read_text())
    assert set(res["generators"]) == {"stylegan", "mygan"}
    r = res["generators"]["stylegan"]["results"]
    assert {"corr/paper/clean", "corr/cv/clean", "shift/train/jpeg90"} <= set(r)
    assert all(0 <= v["accuracy"] <= 1 for v in r.values())
    assert (out / "results.csv").read_text().startswith("generator,score,centres,condition")
    assert (tmp_path / "fps" / "stylegan" / "chk_2.pt").is_file()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce_table.py"), str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr


def _fold_plan():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_table", ROOT / "benchmarks" / "reproduce_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fold_plan


def test_fold_plan_k_fold_is_disjoint_stratified_and_complete():
    import numpy as np

    fold_plan = _fold_plan()
    # 300 per class: above --kfold-below 200 but not above --train-size 512: k-fold, every test set non-empty
    labels = np.array([0] * 300 + [1] * 300)
    folds = fold_plan(labels, 4, 200, 512, seed=0)
    assert len(folds) == 4
    seen = np.concatenate(folds)
    assert len(seen) == len(set(seen.tolist())) == 600  # disjoint and complete
    for held in folds:
        train = np.setdiff1d(np.arange(600), held)
        assert len(np.intersect1d(train, held)) == 0
        assert (labels[held] == 0).sum() == (labels[held] == 1).sum() == 75  # stratified
    # one class large, the other small: still k-fold (the smaller class decides)
    assert len(fold_plan(np.array([0] * 700 + [1] * 100), 4, 200, 512, seed=0)) == 4


def test_fold_plan_single_split_keeps_train_size_per_class():
    import numpy as np

    fold_plan = _fold_plan()
    labels = np.array([0] * 600 + [1] * 700)
    (held,) = fold_plan(labels, 4, 200, 512, seed=3)
    train = np.setdiff1d(np.arange(len(labels)), held)
    assert (labels[train] == 0).sum() == (labels[train] == 1).sum() == 512
    assert (labels[held] == 0).sum() == 88 and (labels[held] == 1).sum() == 188
    assert len(np.intersect1d(train, held)) == 0
    (again,) = fold_plan(labels, 4, 200, 512, seed=3)
    assert np.array_equal(held, again)  # reproducible
