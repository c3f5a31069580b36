"""Sharded evaluation with torch.distributed (2 CPU processes, gloo) and resumable scoring."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dif.cli import run_main
from dif.distributed import ScoreStore, World, merge_shards
from conftest import ROOT, make_dataset

TRAIN = ["--epochs", "3", "--crop", "64", "--batch", "8", "--augment", "0", "--quiet", "--extractor", "highpass"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, scripts):
    base = tmp_path_factory.mktemp("dist")
    data = make_dataset(base / "data", n=9, size=64, seed=3)
    (data / "0_real" / "broken.png").write_bytes(b"not an image")
    (data / "1_fake" / "notes.txt").write_text("x")
    assert run_main(scripts.train.main, [str(data), str(base / "chk"), *TRAIN]) == 0
    gens = base / "gens"
    for i, g in enumerate(("g1", "g2")):
        make_dataset(gens / g, n=5, size=64, seed=20 + i)
        assert run_main(scripts.train.main, [str(gens / g), str(base / "fps" / g), *TRAIN]) == 0
    return base


def _run(nproc: int, args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(ROOT / "eval_dif.py"), *args] if nproc > 1 else [sys.executable, str(ROOT / "eval_dif.py"), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def test_shards_cover_every_image_once_and_merge_in_order():
    shards = [World(r, 3).shard(10) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10)) and [len(s) for s in shards] == [4, 3, 3]
    parts = [(s, {"m": [float(i) for i in s]}) for s in shards]
    idx, scores = merge_shards(parts)
    assert idx == list(range(10)) and scores["m"].tolist() == [float(i) for i in range(10)]


def test_two_processes_write_what_one_writes(setup, tmp_path):
    chk, data = str(setup / "chk"), str(setup / "data")
    outs = {}
    for n in (1, 2):
        j, c = tmp_path / f"{n}.json", tmp_path / f"{n}.csv"
        p = _run(n, [chk, data, "--perturb", "jpeg90,crop", "--json", str(j), "--quiet"])
        assert "clean" in p.stdout
        _run(n, [chk, data, "--csv", str(c), "--quiet"])
        jx, cx = tmp_path / f"x{n}.json", tmp_path / f"x{n}.csv"
        _run(n, [str(setup / "fps"), str(setup / "gens"), "--cross", "--perturb", "jpeg90", "--json", str(jx), "--csv",
                 str(cx), "--quiet"])
        outs[n] = (json.loads(j.read_text()), c.read_text(), json.loads(jx.read_text()), cx.read_text())
    assert outs[1] == outs[2]
    m = outs[1][0]["perturbations"]["clean"]
    assert m["skipped"] == 2 and m["n_real"] == 9  # a broken image and a text file, counted once across ranks
    assert len(outs[1][1].splitlines()) == 1 + 18


def test_an_interrupted_run_resumes_where_it_stopped(setup, tmp_path, scripts, monkeypatch, caplog):
    from dif.methods.dif import DIFMethod

    chk, data = str(setup / "chk"), str(setup / "data")
    full, res = tmp_path / "full.csv", tmp_path / "scores.csv"
    assert run_main(scripts.eval.main, [chk, data, "--csv", str(full), "--quiet", "--eval-batch", "4"]) == 0
    real = DIFMethod.score_features
    calls = {"n": 0}

    def dies_on_the_third_batch(self, feats):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, feats)

    monkeypatch.setattr(DIFMethod, "score_features", dies_on_the_third_batch)
    assert run_main(scripts.eval.main, [chk, data, "--csv", str(tmp_path / "x.csv"), "--quiet", "--eval-batch", "4",
                                        "--resume", str(res)]) == 130
    assert not (tmp_path / "x.csv").exists()
    rows = res.read_text().splitlines()
    assert len(rows) == 7 + 1  # two batches of 4: seven images scored and the broken one recorded as skipped
    res.write_text("\n".join(rows) + "\n" + rows[0][:25])  # a kill also cuts the last line
    monkeypatch.setattr(DIFMethod, "score_features", real)
    counted = {"n": 0}

    def counting(self, feats):
        counted["n"] += len(feats)
        return real(self, feats)

    monkeypatch.setattr(DIFMethod, "score_features", counting)
    out = tmp_path / "resumed.csv"
    assert run_main(scripts.eval.main, [chk, data, "--csv", str(out), "--quiet", "--eval-batch", "4", "--resume", str(res)]) == 0
    assert out.read_text() == full.read_text()
    assert counted["n"] == 18 - 7  # only what the first run had not scored
    counted["n"] = 0
    assert run_main(scripts.eval.main, [chk, data, "--csv", str(out), "--quiet", "--resume", str(res)]) == 0
    assert counted["n"] == 0  # a finished run recomputes nothing
    victim = next((setup / "data" / "0_real").glob("real_0.png"))
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))  # a newer file version
    assert run_main(scripts.eval.main, [chk, data, "--csv", str(out), "--quiet", "--resume", str(res)]) == 0
    assert counted["n"] == 1 and out.read_text() == full.read_text()


def test_score_store_tolerates_junk(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text('a,m,0.5,,ok\nb,m,0.25,,ok\n"c,m,0.1\nd,m,0.3\n')
    s = ScoreStore(f)
    assert s.get("a", "m") == ("0.5", "") and s.get("b", "m") == ("0.25", "") and s.get("d", "m") is None
    s.append([("e", "m", "0.75", "")])
    s.close()
    assert ScoreStore(f).get("e", "m") == ("0.75", "")
    assert np.isfinite(float(ScoreStore(f).get("a", "m")[0]))


def test_paper_table_shards_generators(tmp_path):
    root = tmp_path / "gens"
    for i, g in enumerate(("stylegan", "mygan", "other")):
        make_dataset(root / g, n=4, size=48, seed=30 + i)
    out = {}
    for n in (1, 2):
        args = [str(ROOT / "benchmarks" / "paper_table.py"), str(root), "--folds", "2", "--epochs", "2", "--crop",
                "32", "--batch", "8", "--extractor", "highpass", "--perturb", "jpeg90", "--out", str(tmp_path / str(n)),
                "--quiet"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args] if n == 2 \
            else [sys.executable, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        out[n] = json.loads((tmp_path / str(n) / "results.json").read_text())["generators"]
    assert list(out[1]) == list(out[2]) == ["mygan", "other", "stylegan"]

    def scores(gens):  # everything but the times, which differ between any two runs
        return {g: {k: v for k, v in r["methods"]["DIF"].items() if not k.endswith("_s") and "per_image" not in k
                    and k != "per_fold"} | {"folds": [f["metrics"] for f in r["methods"]["DIF"]["per_fold"]]}
                for g, r in gens.items()}

    assert scores(out[1]) == scores(out[2])
