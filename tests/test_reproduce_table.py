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
