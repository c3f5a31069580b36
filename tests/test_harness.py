"""The method interface, the registry and the streamed evaluation pipelines."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dif.cli import run_main
from dif.errors import DIFError
from dif.evaluate import holdout_split, score_images, stratified_folds
from dif.metrics import binary_metrics
from conftest import ROOT, make_dataset

TRAIN = ["--epochs", "4", "--crop", "64", "--batch", "8", "--augment", "0", "--quiet", "--extractor", "highpass"]


@pytest.fixture
def toy_registered(monkeypatch):
    import dif.methods

    monkeypatch.setitem(dif.methods._REGISTRY, "toy", "toy_method")
    return "toy"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, scripts):
    out = tmp_path_factory.mktemp("harness") / "check"
    assert run_main(scripts.train.main, [str(tiny_data), str(out), *TRAIN]) == 0
    return out


def test_registry_finds_dif_and_refuses_unknown_methods(trained, tiny_data, scripts, capsys, tmp_path):
    from dif.methods import get_method, load_method, method_names, method_of

    assert "dif" in method_names() and get_method("dif").name == "dif"
    assert json.loads((trained / "config.json").read_text())["method"] == "dif"
    assert method_of(trained) == "dif" and method_of(trained / "chk_4.pt") == "dif"
    m = load_method(trained)
    assert m.name == "dif" and np.isfinite(m.threshold)
    with pytest.raises(DIFError, match="unknown method"):
        get_method("nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"method": "nope"}))
    assert run_main(scripts.eval.main, [str(bad), str(tiny_data), "--quiet"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_a_second_method_gets_every_harness_feature(toy_registered, tmp_path, scripts, capsys):
    """A method that is not DIF, registered by one line, evaluated by eval_dif.py: metrics,
    perturbations, CSV, plots, unlabelled folders and the cross matrix."""
    from dif.data import find_labelled
    from dif.methods import get_method

    data = make_dataset(tmp_path / "d", n=8, size=48, seed=4)
    toy = get_method("toy").build({"crop": 32})
    ds = find_labelled(data)
    toy.fit(ds.paths, ds.labels, device=torch.device("cpu"))
    toy.save(tmp_path / "toy_check")
    j, c, p = tmp_path / "t.json", tmp_path / "t.csv", tmp_path / "plots"
    assert run_main(scripts.eval.main, [str(tmp_path / "toy_check"), str(data), "--json", str(j), "--csv", str(c),
                                        "--plots", str(p), "--quiet"]) == 0
    m = json.loads(j.read_text())
    assert m["method"] == "toy" and m["auc"] > 0.9 and m["n_real"] == 8
    assert c.read_text().splitlines()[0] == "path,label,energy,prediction"
    assert (p / "histogram.png").is_file() and (p / "roc.png").is_file()
    assert run_main(scripts.eval.main, [str(tmp_path / "toy_check"), str(data), "--perturb", "jpeg90,blur1",
                                        "--json", str(j), "--quiet"]) == 0
    assert set(json.loads(j.read_text())["perturbations"]) == {"clean", "jpeg90", "blur1"}
    assert run_main(scripts.eval.main, [str(tmp_path / "toy_check"), str(data / "1_fake"), "--quiet"]) == 0
    assert sum("\tenergy " in line for line in capsys.readouterr().out.splitlines()) == 8
    root, gens = tmp_path / "root", tmp_path / "gens"
    root.mkdir()
    toy.save(root / "toy_a")
    toy.save(root / "toy_b")
    make_dataset(gens / "g1", n=4, size=48, seed=5)
    assert run_main(scripts.eval.main, [str(root), str(gens), "--cross", "--json", str(j), "--quiet"]) == 0
    out = json.loads(j.read_text())
    assert out["clean"]["fingerprints"] == ["toy_a", "toy_b"] and "similarity" not in out


def test_methods_sharing_an_extractor_share_one_residual_pass(tmp_path):
    from dif.fingerprint import TrainState
    from dif.methods.dif import DIFMethod

    data = make_dataset(tmp_path / "d", n=4, size=48, seed=6)
    a = DIFMethod.from_state(TrainState(torch.randn(1, 3, 32, 32), [0.0], [0.1], [0.0]), "highpass:1")
    b = DIFMethod.from_state(TrainState(torch.randn(1, 3, 32, 32), [0.0], [0.1], [0.0]), "highpass")
    c = DIFMethod.from_state(TrainState(torch.randn(1, 3, 32, 32), [0.0], [0.1], [0.0]), "highpass:2")
    calls = []
    for m in (a, b, c):
        orig = m.features
        m.features = lambda batch, orig=orig, m=m: calls.append(m) or orig(batch)
    from dif.data import find_labelled

    ds = find_labelled(data)
    s = score_images({"a": a, "b": b, "c": c}, ds.paths, ds.labels, batch_size=8, workers=0)
    assert calls.count(a) == 1 and calls.count(b) == 0 and calls.count(c) == 1  # a and b share highpass:1
    for name, m in (("a", a), ("b", b), ("c", c)):  # shared features score exactly like a method's own pass
        np.testing.assert_allclose(s.scores[name], m.score([__import__("dif.data", fromlist=["load_image"]).load_image(p)
                                                           for p in ds.paths]), rtol=1e-6)


def test_decoding_workers_give_the_same_scores(trained, tiny_data, scripts, tmp_path):
    outs = []
    for w in ("0", "2"):
        c = tmp_path / f"w{w}.csv"
        assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--workers", w, "--eval-batch", "3",
                                            "--csv", str(c)]) == 0
        outs.append(c.read_text())
    assert outs[0] == outs[1]


def test_evaluation_never_keeps_all_residuals(trained, tiny_data, scripts, monkeypatch, tmp_path):
    """Evaluation streams: the keep-everything residual cache (for training) is never used, and a
    batch's residuals are dropped once scored."""
    import dif.data

    monkeypatch.setattr(dif.data, "compute_residuals", lambda *a, **k: pytest.fail("evaluation kept residuals"))
    assert run_main(scripts.eval.main, [str(trained), str(tiny_data), "--quiet", "--perturb", "jpeg90,crop"]) == 0


def test_folds_are_stratified_disjoint_and_reproducible():
    y = np.array([0] * 10 + [1] * 7)
    folds = stratified_folds(y, 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(17))
    for f in folds:
        assert abs((y[f] == 0).sum() - 10 / 3) < 1 and abs((y[f] == 1).sum() - 7 / 3) < 1
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(y, 3, seed=1)))
    test = holdout_split(y, 5, seed=0)
    assert (y[test] == 0).sum() == 5 and (y[test] == 1).sum() == 2
    with pytest.raises(DIFError, match="none left for testing"):
        holdout_split(y, 7, seed=0)
    with pytest.raises(DIFError, match="folds"):
        stratified_folds(y, 0, seed=0)


def test_binary_metrics_by_hand():
    m = binary_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.38)
    assert m["real_accuracy"] == 0.5 and m["fake_accuracy"] == 0.5 and m["accuracy"] == 0.5
    assert m["auc"] == 0.75 and m["n_real"] == 2 and m["n_fake"] == 2 and m["threshold"] == 0.38
    assert binary_metrics([0.2], [1], 0.0)["auc"] is None


def test_config_flags_come_from_the_dataclass(scripts):
    """Every CLI field's first flag is listed with its help; the authors' one-letter aliases parse
    the same but are not listed (one name per idea on the page)."""
    import dataclasses
    import os

    from dif.config import DIFConfig

    env = dict(os.environ, COLUMNS="80")
    p = subprocess.run([sys.executable, str(ROOT / "train_dif.py"), "--help"], capture_output=True, text=True, timeout=60,
                       env=env)
    listed = " ".join(p.stdout.split())
    for f in dataclasses.fields(DIFConfig):
        flags = f.metadata.get("flags", ())
        if flags:
            assert flags[0] in p.stdout, flags[0]
            assert f.metadata["help"][:30] in listed, f.name
        for alias in flags[1:]:
            assert f"{alias} " not in p.stdout and f"{alias}," not in p.stdout, alias
    args = scripts.train.parse_args(["d", "c", "--e", "7", "--bs", "4", "--cs", "32", "--tr", "9", "--f", "2", "--b",
                                     "--a", "0.5"])
    assert (args.epochs, args.batch_size, args.crop, args.train_size, args.checkpoint_every, args.boost, args.alpha) == \
        (7, 4, 32, 9, 2, True, 0.5)
    assert scripts.train.parse_args(["d", "c"]).epochs == 100  # a hidden alias leaves the default alone


@pytest.mark.parametrize("script", ["train_dif.py", "eval_dif.py"])
def test_help_is_a_page(script):
    """At most 60 lines at 80 columns, and no option's help runs past two lines."""
    import os

    p = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, COLUMNS="80"))
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) <= 60, len(lines)
    run = 0
    for line in lines:  # continuation lines of one option's help
        run = run + 1 if line.startswith(" " * 20) and line.strip() else 0
        assert run <= 2, line