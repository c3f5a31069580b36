"""benchmarks/lineage_experiment.py at its smallest: the plumbing (models trained, samples written,
fingerprints trained, a 4 x 4 matrix, the erase curve, figures) and its answer to bad input."""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT


def test_lineage_experiment_tiny(shared_data, tmp_path):
    out = tmp_path / "lineage"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lineage_experiment.py"), "--out", str(out), "--size", "32",
           "--steps", "10", "--finetune", "0,10", "--crops", "64", "--images", "6", "--epochs", "1", "--denoiser",
           "highpass", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "DIF_SHARED_DATA": str(shared_data)})

    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) >= {"P", "C", "S", "X"}
    assert res["models"]["X"]["arch"] == "upconv" and res["models"]["C"]["parent"] == "P"
    auc = np.array(res["cross"]["auc"], dtype=float)
    assert auc.shape == (4, 4) and np.isfinite(auc).all()
    assert res["cross"]["fingerprints"] == res["cross"]["generators"] == ["P", "C", "S", "X"]
    sim = np.array(res["similarity"]["matrix"])
    assert sim.shape == (4, 4) and np.allclose(np.diag(sim), 1) and (sim[~np.eye(4, dtype=bool)] < 1).all()
    assert [c["finetune_steps"] for c in res["erase_curve"]] == [0, 10]
    for name in ("P", "C", "S", "X"):
        assert len(list((out / "data" / "test" / name / "1_fake").glob("*.png"))) == 6
        assert (out / "fingerprints" / name / "chk_1.pt").is_file()
    for fig in ("lineage_cross_auc", "lineage_similarity", "lineage_erase_curve", "lineage_fingerprints",
                "lineage_samples"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DIF_SHARED_DATA": str(shared_data)})
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
