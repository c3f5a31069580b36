"""benchmarks/paper_table.py and compare_methods.py over dif.experiments.folds: the fold plan, and
the paper table end to end on tiny data."""
import json
import subprocess
import sys

import numpy as np

from conftest import ROOT, make_dataset
from dif.experiments.folds import fold_plan


def test_paper_table_tiny(tmp_path):
    root = tmp_path / "gens"
    make_dataset(root / "stylegan", n=4, size=48, seed=1)
    make_dataset(root / "mygan", n=4, size=48, seed=2)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "paper_table.py"), str(root), "--folds", "2", "--epochs", "2",
           "--crop", "32", "--batch", "8", "--extractor", "highpass", "--perturb", "jpeg90", "--out", str(out), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    table = (out / "table.txt").read_text()
    assert "StyleGAN" in table and "91.5" in table and "missing" in table and "mygan" in table and "jpeg90" in table
    res = json.loads((out / "results.json").read_text())
    assert set(res["generators"]) == {"stylegan", "mygan"}
    assert res["config"]["loss"] == "paper" and res["config"]["augment"] == 0 and res["config"]["tiles"] == 1
    m = res["generators"]["stylegan"]["methods"]["DIF"]
    assert len(m["per_fold"]) == 2 and all(0 <= m[f"{c}/accuracy"] <= 1 for c in ("clean", "jpeg90"))
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paper_table.py"), str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr


def test_fold_plan_k_fold_is_disjoint_stratified_and_complete():
    # 300 per class: above --kfold-below 200 but not above --train-size 512: k-fold, every test set non-empty
    labels = np.array([0] * 300 + [1] * 300)
    folds = fold_plan(labels, 4, 0, 200, 512)
    assert len(folds) == 4
    seen = np.concatenate(folds)
    assert len(seen) == len(set(seen.tolist())) == 600  # disjoint and complete
    for held in folds:
        assert (labels[held] == 0).sum() == (labels[held] == 1).sum() == 75  # stratified
    # one class large, the other small: still k-fold (the smaller class decides)
    assert len(fold_plan(np.array([0] * 700 + [1] * 100), 4, 0, 200, 512)) == 4
    assert len(fold_plan(np.array([0] * 700 + [1] * 700), 4, 0)) == 4  # no train size: always k-fold


def test_fold_plan_single_split_keeps_train_size_per_class():
    labels = np.array([0] * 600 + [1] * 700)
    (held,) = fold_plan(labels, 4, 3, 200, 512)
    train = np.setdiff1d(np.arange(len(labels)), held)
    assert (labels[train] == 0).sum() == (labels[train] == 1).sum() == 512
    assert (labels[held] == 0).sum() == 88 and (labels[held] == 1).sum() == 188
    (again,) = fold_plan(labels, 4, 3, 200, 512)
    assert np.array_equal(held, again)  # reproducible
