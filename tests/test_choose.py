"""auto's criteria (dif/choose.py) and the precision of the training residuals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dif.choose import AutoSpec, _leader, choose_extractor, meandiff_loo, parse_auto
from dif.config import DIFConfig
from dif.data import ResidualCache, TrainingSet
from dif.errors import DIFError
from dif.fingerprint import pearson


def _set(res: torch.Tensor, labels: list[int], groups: list[int]) -> TrainingSet:
    cache = ResidualCache([f"img{g}" for g in groups], torch.tensor(labels), res)
    return TrainingSet(cache, np.asarray(groups), np.ones(len(labels), dtype=bool), len(labels))


def test_meandiff_loo_leaves_each_image_out_whole():
    """Each image (all its residuals: copies, tiles) is scored by a fingerprint made without any of
    them: the same numbers as the brute-force leave-one-out."""
    g = torch.Generator().manual_seed(0)
    res = torch.randn(12, 2, 8, 8, generator=g)
    groups = [0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]
    labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    auc, sep = meandiff_loo(_set(res, labels, groups))
    lab, grp = torch.tensor(labels), np.asarray(groups)
    want = []
    for i in range(8):
        out = torch.from_numpy(grp != i)
        r, y = res[out], lab[out]
        f = r[y == 1].mean(0) - r[y == 0].mean(0)
        want.append(float(pearson(f, res[torch.from_numpy(grp == i)]).mean()))
    y_img = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    from sklearn.metrics import roc_auc_score

    assert auc == pytest.approx(roc_auc_score(y_img, want))
    w = np.array(want)
    a, b = w[y_img == 1], w[y_img == 0]
    assert sep == pytest.approx((a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2), rel=1e-4)


def test_meandiff_loo_finds_a_planted_pattern_and_not_noise():
    """Fakes carrying a fixed pattern under strong noise: AUC 1 and a large separation; the same
    noise with no pattern stays near chance."""
    g = torch.Generator().manual_seed(1)
    pattern = torch.randn(1, 3, 16, 16, generator=g)
    noise = torch.randn(40, 3, 16, 16, generator=g) * 3
    labels = [0] * 20 + [1] * 20
    planted = noise + torch.tensor(labels).view(-1, 1, 1, 1) * pattern
    auc, sep = meandiff_loo(_set(planted, labels, list(range(40))))
    assert auc == 1.0 and sep > 3
    auc0, sep0 = meandiff_loo(_set(noise, labels, list(range(40))))
    assert 0.2 < auc0 < 0.8 and abs(sep0) < 1.5


def test_leader_breaks_meandiff_ties_by_separation_and_fold_ties_by_cost():
    md = [{"extractor": "a", "auc": 1.0, "separation": 2.0}, {"extractor": "b", "auc": 0.998, "separation": 3.5},
          {"extractor": "c", "auc": 0.9, "separation": 9.0}]
    assert _leader(md)["extractor"] == "b"  # within the tie of the best AUC, the larger separation
    folds = [{"extractor": "a", "auc": 0.998}, {"extractor": "b", "auc": 1.0}]
    assert _leader(folds)["extractor"] == "a"  # the cheaper within the tie


def test_parse_auto_meandiff():
    assert parse_auto("auto:meandiff") == AutoSpec(2, 0, "meandiff")
    assert parse_auto("auto") == parse_auto("auto:2") == AutoSpec(2, 5, "folds")  # the default criterion
    assert parse_auto("auto:3:0") == (3, 0, "folds")
    assert parse_auto("dncnn") is None
    for bad in ("auto:meandiff:3", "auto:mean", "auto:2:meandiff"):
        with pytest.raises(DIFError):
            parse_auto(bad)


def test_choose_extractor_meandiff_scores_every_candidate(tiny_data):
    """No fold training and no early stop: every candidate gets an AUC and a separation, and the
    chosen one's residuals come back whole (the tiny set's fakes carry a period-4 pattern)."""
    from dif.data import find_labelled

    data = find_labelled(tiny_data)
    cfg = DIFConfig(crop=32, epochs=1, augment=1, tiles=1)
    chosen, ts, rep = choose_extractor(data.paths, data.labels, cfg, "cpu", candidates=("highpass", "wavelet-dwt"),
                                       criterion="meandiff")
    assert [c["extractor"] for c in rep["candidates"]] == ["highpass:1", "wavelet-dwt:5"]
    assert all("separation" in c for c in rep["candidates"]) and "skipped" not in rep
    assert rep["criterion"] == "meandiff" and chosen == _leader(rep["candidates"])["extractor"]
    assert max(c["auc"] for c in rep["candidates"]) == 1.0
    assert ts.cache.residuals is not None and len(ts.cache.labels) == 2 * len(data.paths)


def test_training_residuals_are_folded_by_default_and_old_configs_read_fp32(tiny_data):
    """New fingerprints train on the folded DnCNN's residuals (evaluation's default path); a config
    saved before the option existed reads back as fp32, what it was trained with; --residual-precision
    fp32 gives the reference back, and the two fingerprints' scores agree closely."""
    from dif.data import find_labelled
    from dif.methods.dif import DIFMethod

    assert DIFConfig().residual_precision == "folded"
    old = DIFConfig().to_dict()
    del old["residual_precision"]
    assert DIFConfig.from_dict(old).residual_precision == "fp32"
    data = find_labelled(tiny_data)
    scores = {}
    for prec in ("folded", "fp32"):
        cfg = DIFConfig(crop=32, epochs=2, augment=0, tiles=1, extractor="dncnn", residual_precision=prec,
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
    for spec in ("auto:meandiff", None):
        cfg = DIFConfig(crop=32, epochs=2, augment=1, tiles=1, checkpoint_every=2,
                        extractor=spec or fits["auto:meandiff"].config.extractor)
        m = DIFMethod.build(cfg)
        m.fit(data.paths, data.labels, device=torch.device("cpu"))
        fits[spec] = m
    a, b = fits["auto:meandiff"], fits[None]
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
                        "--extractors", "highpass,wavelet-dwt,wavelet,dncnn,auto:meandiff,auto:2:1", "--epochs", "2",
                        "--crop", "32", "--augment", "1", "--json", str(tmp_path / "x.json")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    g = json.loads((tmp_path / "x.json").read_text())["roots"][str(tmp_path / "root")]["generators"]["gen"]
    for spec in ("auto:meandiff", "auto:2:1"):
        picks = g["auto_chose"][spec]
        assert len(picks) == 2  # one choice per outer fold
        for k, pick in enumerate(picks):
            assert g["per_fold"][f"{spec}/clean"][k] == g["per_fold"][f"{pick.split(':')[0]}/clean"][k]
