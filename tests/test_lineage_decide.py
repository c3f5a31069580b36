"""The lineage decision: its p-values (exact where they claim to be, calibrated under a normal
null), ``python -m dif.lineage decide`` on a planted relation, its answer to bad input, and the
multi-seed sweep at its smallest."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, make_dataset, periodic_pattern, smooth_image, write_png
from dif.cli import run_main
from dif.errors import DIFError
from dif.lineage import decide, main as lineage_main, rank_p_value, t_p_value
from dif.metrics import wilson_interval


def test_rank_p_value_counts_the_pool_models_at_least_as_high():
    pool = [0.1, 0.2, 0.3, 0.4]
    assert rank_p_value(0.5, pool) == pytest.approx(1 / 5)
    assert rank_p_value(0.3, pool) == pytest.approx(3 / 5)  # ties count against the candidate
    assert rank_p_value(0.0, pool) == pytest.approx(1.0)


def test_both_tests_hold_their_false_positive_rate_under_the_null():
    rng = np.random.default_rng(0)
    trials, m, alpha = 20000, 19, 0.05
    hits = {"rank": 0, "t": 0}
    for _ in range(trials):
        v = rng.normal(size=m + 1)  # the candidate is one more draw of the null
        hits["rank"] += rank_p_value(v[0], v[1:]) <= alpha
        hits["t"] += t_p_value(v[0], v[1:]) <= alpha
    se = np.sqrt(alpha * (1 - alpha) / trials)
    for test, h in hits.items():
        assert abs(h / trials - alpha) < 4 * se, (test, h / trials)


def test_a_candidate_far_above_the_pool_is_related_and_one_inside_it_is_not():
    pool = list(np.linspace(-1, 1, 19))
    assert decide(5.0, pool).related and decide(5.0, pool, test="t").related
    assert not decide(0.0, pool).related and not decide(0.0, pool, test="t").related
    assert decide(5.0, pool, test="t").p_t < 1e-3 and decide(5.0, pool).p_rank == pytest.approx(1 / 20)
    with pytest.raises(DIFError, match="at least 2"):
        decide(1.0, [0.0])
    with pytest.raises(DIFError, match="alpha"):
        decide(1.0, pool, alpha=1.5)


def _model_folder(folder, n, seed, pattern):
    rng = np.random.default_rng(seed)
    pat = periodic_pattern(64, 64)
    for i in range(n):
        write_png(folder / f"{i}.png", smooth_image(rng, 64, 64) + (pat if pattern else 0))
    return folder


@pytest.fixture(scope="module")
def planted(tmp_path_factory, scripts):
    """A fingerprint of the period-4 pattern, a candidate that carries the pattern, one that does
    not, and a pool of 4 models without it."""
    root = tmp_path_factory.mktemp("lineage")
    data = make_dataset(root / "train", n=8)
    check = root / "check"
    assert run_main(scripts.train.main, [str(data), str(check), "--epochs", "6", "--crop", "64", "--batch", "8",
                                         "--augment", "0", "--extractor", "highpass", "--quiet"]) == 0
    for i in range(4):
        _model_folder(root / "pool" / f"m{i}", 6, 100 + i, pattern=False)
    related = _model_folder(root / "child", 6, 7, pattern=True)
    make_dataset(root / "labelled_child", n=6, seed=9)  # a labelled folder: its 1_fake/ is the model's images
    unrelated = _model_folder(root / "stranger", 6, 8, pattern=False)
    return root, check, related, unrelated


def test_decide_finds_the_planted_relation_and_not_a_stranger(planted, capsys, tmp_path):
    root, check, related, unrelated = planted
    out = tmp_path / "d.json"
    assert run_main(lineage_main, ["decide", str(check), str(related), str(root / "pool"), "--test", "t", "--json",
                                   str(out), "--quiet"]) == 0
    assert "RELATED" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["related"] and d["p_t"] < 0.05 and d["p_rank"] == pytest.approx(1 / 5) and len(d["pool"]) == 4
    assert d["likeness"] > 0.5 and d["images"] == 6
    assert run_main(lineage_main, ["decide", str(check), str(unrelated), str(root / "pool"), "--test", "t",
                                   "--quiet"]) == 0
    assert "not shown related" in capsys.readouterr().out
    assert run_main(lineage_main, ["decide", str(check), str(root / "labelled_child"), str(root / "pool"), "--test", "t",
                                   "--quiet"]) == 0
    assert "RELATED" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["small pool", "missing parent", "candidate in pool", "empty candidate", "bad alpha",
                                  "bad perturb", "json is a folder"])
def test_decide_answers_bad_input_in_one_line(planted, tmp_path, capsys, case):
    root, check, related, _ = planted
    args = ["decide", str(check), str(related), str(root / "pool"), "--quiet"]
    if case == "missing parent":
        args[1] = str(tmp_path / "nowhere")
    elif case == "candidate in pool":
        args[2] = str(root / "pool" / "m0")
    elif case == "empty candidate":
        (tmp_path / "empty").mkdir()
        args[2] = str(tmp_path / "empty")
    elif case == "bad alpha":
        args += ["--test", "t", "--alpha", "0"]
    elif case == "bad perturb":
        args += ["--test", "t", "--perturb", "jpeg900"]
    elif case == "json is a folder":
        args += ["--test", "t", "--json", str(tmp_path)]
    # "small pool": 4 models cannot reach alpha 0.05 with the rank test
    assert run_main(lineage_main, args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    if case == "small pool":
        assert "--test t" in err


def test_lineage_sweep_tiny(shared_data, tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "lineage.py"), "sweep", "--out", str(out), "--seeds", "0,1,2",
           "--steps", "5", "--finetune", "3,6", "--crops", "64", "--images", "6", "--epochs", "1", "--extractor",
           "highpass", "--quiet"]
    env = {**os.environ, "DIF_SHARED_DATA": str(shared_data)}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["conditions"] == ["clean", "jpeg90"] and len(res["models"]) == 3 * 8
    for cond in res["conditions"]:
        rows = res["results"][cond]["pairs"]
        assert len(rows) == 6 * 24  # every parent against every model, its own new images included (the control)
        assert {r["pool"] for r in rows} == {8}  # one other replicate's models, never the candidate's or the parent's
        kids = [r for r in rows if r["relation"] == "child"]
        assert len(kids) == 6 * 2 and all(r["candidate"].startswith(r["parent"] + ">") for r in kids)
        rates = {(d["relation"], d["steps"]) for d in res["results"][cond]["rates"]}
        assert ("self", 0) in rates and ("sibling", 0) in rates and ("other data, other architecture", 0) in rates
    assert (out / "figures" / "lineage_sweep.png").stat().st_size > 1000
    # one replicate: no pool for any pair, so the AUC table alone (the single-seed experiment)
    one = subprocess.run(cmd[:4] + [str(tmp_path / "one"), "--seeds", "0", "--perturb", ""] + cmd[7:],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0 and "only the AUC table" in one.stdout, one.stderr[-2000:]
    res = json.loads((tmp_path / "one" / "results.json").read_text())["results"]["clean"]
    assert res["pairs"] == [] and res["rates"] == [] and {d["relation"] for d in res["auc"]} >= {"self", "child"}
    bad = subprocess.run(cmd[:4] + [str(tmp_path / "bad"), "--seeds", "0,0"] + cmd[7:], capture_output=True, text=True,
                         timeout=60, env=env)
    assert bad.returncode == 2 and "distinct" in bad.stderr and "Traceback" not in bad.stderr
