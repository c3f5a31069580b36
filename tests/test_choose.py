"""auto's rule (dif/choose.py) and the precision of the training residuals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dif.choose import AutoSpec, _leader, parse_auto
from dif.config import DIFConfig
from dif.data import ResidualCache, TrainingSet
from dif.errors import DIFError


def _set(res: torch.Tensor, labels: list[int], groups: list[int]) -> TrainingSet:
    cache = ResidualCache([f"img{g}" for g in groups], torch.tensor(labels), res)
    return TrainingSet(cache, np.asarray(groups), np.ones(len(labels), dtype=bool), len(labels))


def test_leader_takes_the_cheapest_within_the_tie():
    folds = [{"extractor": "a", "score": 0.998}, {"extractor": "b", "score": 1.0}, {"extractor": "c", "score": 0.9}]
    assert _leader(folds)["extractor"] == "a"
    assert _leader(folds[1:])["extractor"] == "b"


def test_parse_auto():
    assert parse_auto("auto") == parse_auto("auto:2") == AutoSpec(2, 5)
    assert parse_auto("auto:3:0") == (3, 0)
    assert parse_auto("dncnn") is None
    for bad in ("auto:meandiff", "auto:1", "auto:2:x", "auto:2:3:4"):
        with pytest.raises(DIFError):
            parse_auto(bad)


def test_training_residuals_are_folded_by_default_and_old_configs_read_fp32(tiny_data):
    """New fingerprints train on the folded DnCNN's residuals (evaluation's default path); a
    version-1 config without the key reads back as fp32, what it was trained with;
    --extractor-precision fp32 gives the reference back, and the two fingerprints' scores agree
    closely."""
    from dif.data import find_labelled
    from dif.methods.dif import DIFMethod

    assert DIFConfig().extractor_precision == "folded"
    old = DIFConfig().to_dict()
    del old["extractor_precision"]  # no config_version: version 1
    assert DIFConfig.from_dict(old).extractor_precision == "fp32"
    data = find_labelled(tiny_data)
    scores = {}
    for prec in ("folded", "fp32"):
        cfg = DIFConfig(crop=32, epochs=2, augment=0, tiles=1, extractor="dncnn", extractor_precision=prec,
                        checkpoint_every=2)
        m = DIFMethod.build(cfg)
        m.fit(data.paths, data.labels, device=torch.device("cpu"))
        assert m.extractor.precision == prec
        scores[prec] = m.detector.correlate(m.extractor(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))))
    assert torch.allclose(torch.as_tensor(scores["folded"]), torch.as_tensor(scores["fp32"]), atol=1e-4)


def test_auto_trains_the_chosen_candidates_fixed_fingerprint(tiny_data):
    """What benchmarks/extractor_choice.py relies on to score an auto spec without training it again:
    auto's final fingerprint is the fixed training of the extractor it chose (same residuals, same
    seed), so the two detectors are identical."""
    from dif.data import find_labelled
    from dif.methods.dif import DIFMethod

    data = find_labelled(tiny_data)
    fits = {}
    for spec in ("auto:2:1", None):
        cfg = DIFConfig(crop=32, epochs=2, augment=1, tiles=1, checkpoint_every=2,
                        extractor=spec or fits["auto:2:1"].config.extractor)
        m = DIFMethod.build(cfg)
        m.fit(data.paths, data.labels, device=torch.device("cpu"))
        fits[spec] = m
    a, b = fits["auto:2:1"], fits[None]
    assert torch.equal(a.state.fingerprint, b.state.fingerprint)
    assert (a.detector.mu_real, a.detector.mu_fake) == (b.detector.mu_real, b.detector.mu_fake)


def test_extractor_choice_benchmark_scores_auto_specs_by_their_choice(tmp_path):
    """benchmarks/extractor_choice.py at a tiny size: every fixed candidate trained, each auto spec's
    held-out numbers those of the candidate it chose in that fold."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import make_dataset

    root = Path(__file__).resolve().parents[1]
    make_dataset(tmp_path / "root" / "gen", n=6, size=48)
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "extractor_choice.py"), str(tmp_path / "root"),
                        "--extractors", "highpass,wavelet-dwt,wavelet,dncnn,auto:2:1", "--epochs", "2",
                        "--crop", "32", "--augment", "1", "--json", str(tmp_path / "x.json")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    g = json.loads((tmp_path / "x.json").read_text())["roots"][str(tmp_path / "root")]["generators"]["gen"]
    for spec in ("auto:2:1",):
        picks = g["auto_chose"][spec]
        assert len(picks) == 2  # one choice per outer fold
        for k, pick in enumerate(picks):
            assert g["per_fold"][f"{spec}/clean"][k] == g["per_fold"][f"{pick.split(':')[0]}/clean"][k]


def test_out_of_fold_aucs_matches_the_calibration_folds(tiny_data):
    """auto's clean out-of-fold AUC is the AUC of calibration.out_of_fold_scores' per-image scores
    (the same folds, seeds and steps): one definition of an out-of-fold score."""
    from sklearn.metrics import roc_auc_score

    from dif.calibration import out_of_fold_scores
    from dif.choose import config_residuals, out_of_fold_aucs, per_image_scores
    from dif.data import find_labelled
    from dif.extractors import build_extractor

    data = find_labelled(tiny_data)
    cfg = DIFConfig(crop=32, epochs=3, augment=1, tiles=0, batch_size=8, max_shift=0)
    ts = config_residuals(data.paths, data.labels, build_extractor("highpass"), cfg, "cpu")
    got = out_of_fold_aucs(ts, {}, cfg, 2, "cpu")
    s = out_of_fold_scores(ts.cache.residuals, ts.cache.labels, cfg, 2, "cpu", ts.groups, per_image=ts.per_image)["corr"]
    y, s = per_image_scores(s[ts.clean], ts.cache.labels.numpy()[ts.clean], ts.groups[ts.clean])
    assert got == {"clean": pytest.approx(float(roc_auc_score(y, s)), abs=1e-12)}


def test_auto_ranks_on_a_few_tiles_and_trains_on_all(tiny_data):
    """Each candidate is ranked on the SCREEN_TILES tiles nearest the centre; only the chosen one's
    residuals are computed over every tile, and they are those of a fixed training. Held-out
    perturbations, when asked, are scored per candidate and weigh half of its score."""
    from dif.choose import SCREEN_TILES, choose_extractor, config_residuals, criterion
    from dif.data import find_labelled
    from dif.extractors import build_extractor

    data = find_labelled(tiny_data)  # 64 px images, crop 32: 4 tiles each
    cfg = DIFConfig(crop=32, epochs=2, augment=1, tiles=0, batch_size=8)
    chosen, ts, rep = choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=("highpass", "wavelet-dwt"),
                                       perturbations=("jpeg75", "resize0.5"))
    assert rep["screen_tiles"] == SCREEN_TILES == 2
    full = config_residuals(data.paths, data.labels, build_extractor(chosen), cfg, "cpu")
    assert torch.equal(ts.cache.residuals, full.cache.residuals) and np.array_equal(ts.groups, full.groups)
    assert ts.clean.sum() == 12 * 4  # every tile of every image (and of the copies)
    for c in rep["candidates"]:
        assert set(c["perturbed"]) == {"jpeg75", "resize0.5"}
        assert c["score"] == pytest.approx(criterion({"clean": c["auc"], **c["perturbed"]}), abs=2e-4)
    assert criterion({"clean": 0.9, "jpeg75": 0.7, "crop": 0.5}) == pytest.approx(0.75)
    assert criterion({"clean": 0.9}) == 0.9
