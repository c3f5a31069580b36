import numpy as np
import pytest
import torch

from dif.calibration import choose_centres, out_of_fold_scores
from dif.evaluate import cross_detection, stratified_folds
from dif.config import DIFConfig
from dif.detect import Detector
from dif.errors import DIFError
from dif.fingerprint import TrainState, pearson
from dif.lineage import find_generators, fingerprint_similarity
from dif.methods.dif import DIFMethod
from dif.spectrum import circular_ncc, shift_window
from conftest import make_dataset, periodic_pattern


def test_fft_cross_correlation_equals_brute_force_shift_search():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 3, 9, 7, generator=g)
    r = torch.randn(4, 3, 9, 7, generator=g)
    ncc = circular_ncc(f, r)
    brute = torch.stack([torch.stack([pearson(f, torch.roll(r, (-dy, -dx), (-2, -1))) for dx in range(7)], -1)
                         for dy in range(9)], -2)
    torch.testing.assert_close(ncc, brute, atol=1e-5, rtol=1e-4)
    win = shift_window(ncc, 2)
    assert win.shape == (4, 5, 5)
    torch.testing.assert_close(win[:, 2, 2], ncc[:, 0, 0])
    torch.testing.assert_close(win[:, 0, 4], ncc[:, -2, 2])


def test_shift_score_recovers_a_shifted_pattern():
    g = torch.Generator().manual_seed(0)
    fp = torch.randn(1, 3, 32, 32, generator=g)
    res = 0.3 * torch.roll(fp, (2, 3), (-2, -1)) + torch.randn(1, 3, 32, 32, generator=g)
    det = Detector(fp, 0.0, 0.1, max_shift=4)
    assert det.correlate(res, score="corr")[0] < 0.1 < det.correlate(res, score="shift")[0]
    neg = Detector(-fp, 0.0, -0.1, max_shift=4)  # fakes correlate negatively: the score follows
    assert neg.correlate(res, score="shift")[0] < -0.1


def test_smaller_residuals_use_the_central_crop_of_the_fingerprint():
    fp = torch.randn(1, 3, 16, 16)
    det = Detector(fp, 0.0, 0.1)
    small = fp[..., 4:12, 2:14].clone()
    assert det.correlate([small])[0] == pytest.approx(1.0, abs=1e-5)


def test_stratified_folds_cover_everything_once():
    y = np.array([0] * 7 + [1] * 5)
    folds = stratified_folds(y, 3, seed=0)
    allidx = np.sort(np.concatenate(folds))
    assert allidx.tolist() == list(range(12))
    assert all(1 <= (y[f] == 1).sum() <= 2 for f in folds)


def test_out_of_fold_scores_and_centre_choice():
    g = torch.Generator().manual_seed(0)
    pattern = torch.zeros(1, 3, 32, 32)
    pattern[..., ::2, ::2] = 1.0
    res = torch.cat([torch.randn(6, 3, 32, 32, generator=g), torch.randn(6, 3, 32, 32, generator=g) + 0.5 * pattern])
    lab = torch.tensor([0] * 6 + [1] * 6)
    # 30 epochs: at 8 the EMA fingerprint is still mostly the untrained output, and the sign of the
    # held-out gap was a coin toss over data seeds for either loss (at 30 it is right on 8 of 8 for the default)
    cfg = DIFConfig(width=8, depth=2, epochs=30, batch_size=8, lr=5e-3, crop=32)
    oof = out_of_fold_scores(res, lab, cfg, folds=3)
    assert set(oof) == {"corr", "shift"} and np.isfinite(oof["corr"]).all()
    assert oof["corr"][6:].mean() > oof["corr"][:6].mean()  # held-out fakes lean toward the fake side
    with pytest.raises(DIFError, match="needs at least 7"):
        out_of_fold_scores(res, lab, cfg, folds=7)
    det = Detector(torch.zeros(1, 3, 32, 32), 0.0, 0.01)
    cal = {"train": {"corr": [0.1, 0.2], "shift": [0.3, 0.4]}}
    d, m = choose_centres(det, cal, "shift", "auto")
    assert m == "train" and (d.mu_real, d.mu_fake, d.score) == (0.3, 0.4, "shift")
    d, m = choose_centres(det, cal, "corr", "auto")
    assert m == "paper" and (d.mu_real, d.mu_fake) == (0.0, 0.01)
    with pytest.raises(DIFError, match="no 'cv' centres"):
        choose_centres(det, cal, "corr", "cv")
    with pytest.raises(DIFError, match="paper's centres"):
        choose_centres(det, cal, "shift", "paper")


def test_cross_detection_matrix_on_tiny_data(tmp_path):
    """The matching fingerprint (the fakes' period-4 pattern) detects both generators; a random
    one does not; both share one residual pass (same extractor)."""
    root = tmp_path / "gens"
    make_dataset(root / "a", n=6, size=48, seed=1)
    make_dataset(root / "b", n=6, size=48, seed=2)
    (root / "notes").mkdir()
    gens = find_generators(root)
    assert list(gens) == ["a", "b"]
    fp = torch.from_numpy(periodic_pattern(32, 32).transpose(2, 0, 1)).float().unsqueeze(0)
    methods = {"pattern": DIFMethod.from_state(TrainState(fp, [0.0], [0.05], [0.0]), "highpass:1"),
               "noise": DIFMethod.from_state(TrainState(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                                                        [0.0], [0.05], [0.0]), "highpass:1")}
    res = cross_detection(methods, gens, ["clean", "jpeg90"])["clean"]
    assert res.accuracy.shape == (2, 2) and res.auc.shape == (2, 2)
    assert (res.auc[0] == 1.0).all() and (res.accuracy[0] >= 0.9).all(), res.accuracy
    assert (res.auc[1] < 0.9).all(), res.auc
    assert len(res.rows) == 4 and res.extractors == {"pattern": "highpass:1", "noise": "highpass:1"}
    js = res.to_json()
    assert js["fingerprints"] == ["pattern", "noise"] and len(js["auc"][0]) == 2


def test_fingerprint_similarity_allows_for_shifts():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 3, 16, 16, generator=g)
    names, sim = fingerprint_similarity({"a": a, "a_shifted": torch.roll(a, (3, 5), (-2, -1)),
                                         "other": torch.randn(1, 3, 16, 16, generator=g)})
    assert names == ["a", "a_shifted", "other"]
    assert sim[0, 1] == pytest.approx(1.0, abs=1e-5) and sim[0, 2] < 0.5
    np.testing.assert_allclose(sim, sim.T)


def test_cv_centres_pool_folds_whose_direction_flips(monkeypatch):
    """Out-of-fold scores are put in each fold fingerprint's fake direction before pooling, and the
    cv centres are brought back to the final fingerprint's own sign: with folds that alternate
    between +pattern and -pattern fingerprints, fakes still score above reals in the pooled scores
    and the centres keep the final fingerprint's orientation."""
    import numpy as np
    import torch

    import dif.calibration as cal
    from dif.config import DIFConfig
    from dif.fingerprint import TrainState

    g = torch.Generator().manual_seed(0)
    pattern = torch.zeros(1, 3, 32, 32)
    pattern[..., ::2, ::2] = 1.0
    pattern -= pattern.mean()
    real = torch.randn(8, 3, 32, 32, generator=g)
    fake = torch.randn(8, 3, 32, 32, generator=g) + 0.5 * pattern
    res, lab = torch.cat([real, fake]), torch.tensor([0] * 8 + [1] * 8)
    calls = []

    def fake_train(residuals, labels, cfg, **kw):
        sign = 1.0 if len(calls) % 2 == 0 else -1.0  # folds alternate in direction
        calls.append(sign)
        return TrainState(fingerprint=sign * pattern, train_real=[0.0] * 20, train_fake=[0.3 * sign] * 20, loss=[0.0])

    monkeypatch.setattr(cal, "train_fingerprint", fake_train)
    cfg = DIFConfig(crop=32, calibrate="cv", folds=4, max_shift=0)
    oof = cal.out_of_fold_scores(res, lab, cfg, 4)
    assert calls == [1.0, -1.0, 1.0, -1.0]
    corr = oof["corr"]
    assert corr[8:].min() > corr[:8].max()  # every fold's fakes on the positive side once oriented
    final = TrainState(fingerprint=-pattern, train_real=[0.0] * 20, train_fake=[-0.3] * 20, loss=[0.0])
    c = cal.calibrate(final, cfg, res, lab)
    mu_real, mu_fake = c["cv"]["corr"]
    assert mu_fake < mu_real  # the final fingerprint's fakes correlate negatively: its cv centres say so
    assert np.sign(mu_fake - mu_real) == np.sign(c["train"]["corr"][1] - c["train"]["corr"][0])
