import math

import numpy as np
import pytest
import torch

from dif.config import DIFConfig
from dif.errors import DIFError
from dif.fingerprint import (booster_loss, centres, contrastive_loss, ema_norm, ema_update, make_batches, nearest_centre,
                             pearson, ranking_loss, train_fingerprint)


def test_pearson_matches_numpy():
    g = torch.Generator().manual_seed(0)
    fp = torch.randn(1, 3, 8, 8, generator=g)
    res = torch.randn(5, 3, 8, 8, generator=g) + 0.3 * fp
    got = pearson(fp, res).numpy()
    want = [np.corrcoef(fp.flatten().numpy(), r.flatten().numpy())[0, 1] for r in res]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pearson_hand_value_and_invariances():
    # x = (1, 2, 3, 4), y = (1, 3, 2, 4): r = 0.8 by hand (cov 1.0 / var 1.25).
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    y = torch.tensor([1.0, 3.0, 2.0, 4.0]).view(1, 1, 2, 2)
    assert pearson(x, y).item() == pytest.approx(0.8, abs=1e-6)
    assert pearson(x, 5 * y + 7).item() == pytest.approx(0.8, abs=1e-6)
    assert pearson(x, -y).item() == pytest.approx(-0.8, abs=1e-6)
    assert pearson(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_pearson_constant_is_zero_not_nan():
    x = torch.ones(1, 3, 4, 4)
    assert pearson(x, torch.rand(2, 3, 4, 4)).tolist() == [0.0, 0.0]


def test_contrastive_loss_hand_values():
    m = 0.01
    corr = torch.tensor([0.020, 0.001, 0.014, 0.030])
    labels = torch.tensor([1, 0, 1, 0])
    # pairs: (0.020 fake, 0.014 fake) same: |d| = 0.006; (0.001 real, 0.030 real) same: 0.029
    assert contrastive_loss(corr, labels, m).item() == pytest.approx((0.006 + 0.029) / 2 / m, rel=1e-5)
    labels = torch.tensor([1, 0, 0, 1])
    # different classes: relu(m - 0.006) = 0.004 ; relu(m - 0.029) = 0
    assert contrastive_loss(corr, labels, m).item() == pytest.approx((0.004 + 0.0) / 2 / m, rel=1e-5)


def test_contrastive_loss_odd_batch_and_gradient():
    corr = torch.tensor([0.0, 0.005, 0.002], requires_grad=True)
    loss = contrastive_loss(corr, torch.tensor([0, 1, 1]), 0.01)
    assert loss.item() == pytest.approx(0.5, rel=1e-5)  # one pair, relu(0.01 - 0.005) / 0.01
    loss.backward()
    assert corr.grad[2] == 0 and corr.grad[0] > 0 and corr.grad[1] < 0
    with pytest.raises(ValueError):
        contrastive_loss(torch.tensor([0.1]), torch.tensor([0]), 0.01)


def test_ranking_loss_hand_values_and_gradient():
    m = 0.01
    corr = torch.tensor([0.020, 0.001, 0.014, 0.030], requires_grad=True)
    # pairs (0, 2) and (1, 3), both of one class: no cost, no gradient (the paper's pull is gone)
    assert ranking_loss(corr, torch.tensor([1, 0, 1, 0]), m).item() == 0.0
    # fake 0.020 against real 0.014: leads by 0.006, costs 0.004; real 0.001 against fake 0.030: leads by 0.029, free
    loss = ranking_loss(corr, torch.tensor([1, 0, 0, 1]), m)
    assert loss.item() == pytest.approx(0.004 / 2 / m, rel=1e-5)
    loss.backward()
    assert corr.grad[0] < 0 and corr.grad[2] > 0 and corr.grad[1] == 0 and corr.grad[3] == 0
    # the sign counts: a real above its fake by more than the margin is the worst case, not a success
    flipped = ranking_loss(torch.tensor([0.0, 0.05]), torch.tensor([1, 0]), m)
    assert flipped.item() == pytest.approx((m + 0.05) / m, rel=1e-5)
    assert contrastive_loss(torch.tensor([0.0, 0.05]), torch.tensor([1, 0]), m).item() == 0.0
    with pytest.raises(ValueError):
        ranking_loss(torch.tensor([0.1]), torch.tensor([0]), m)


def test_configs_saved_before_the_ranking_loss_read_as_the_paper():
    d = DIFConfig().to_dict()
    assert d["loss"] == "ranking"
    del d["loss"]
    assert DIFConfig.from_dict(d).loss == "paper"
    from dif.config import config_from_authors
    assert config_from_authors({}).loss == "paper"


def record_unet_outputs(monkeypatch) -> list:
    """The U-Net's output at every training step, captured (the list fills as training runs)."""
    import dif.fingerprint as fpmod

    outputs: list = []

    class Recording(fpmod.UNet):
        def forward(self, x):
            y = super().forward(x)
            outputs.append(y.detach().clone())
            return y

    monkeypatch.setattr(fpmod, "UNet", Recording)
    return outputs


def test_version_1_configs_migrate_to_what_trained_them():
    """A config.json without config_version (version 1) takes the values in force when it was
    written for the keys it lacks, renames residual_precision, drops the options that shaped
    training only; the current version round-trips; a version from the future is refused."""
    from dif.config import CONFIG_VERSION, migrate_config

    v1 = {k: v for k, v in DIFConfig().to_dict().items()
          if k not in ("tiles", "augment_kinds", "loss", "extractor_precision")}
    v1.update(ema_start="first", clean_first=0.3, residual_precision="folded")
    cfg = DIFConfig.from_dict(v1)
    assert (cfg.tiles, cfg.loss, cfg.augment_kinds, cfg.extractor_precision) == \
        (1, "paper", "jpeg,resize,blur,shift,rotate", "folded")
    assert DIFConfig.from_dict({k: v for k, v in v1.items() if k != "residual_precision"}).extractor_precision == "fp32"
    now = dict(DIFConfig(tiles=3).to_dict(), config_version=CONFIG_VERSION)
    assert DIFConfig.from_dict(now) == DIFConfig(tiles=3)
    assert migrate_config(v1)["config_version"] == CONFIG_VERSION and "ema_start" not in migrate_config(v1)
    with pytest.raises(DIFError, match="config_version"):
        DIFConfig.from_dict(dict(now, config_version=CONFIG_VERSION + 1))


def test_the_fingerprint_is_the_moving_average_of_the_outputs(monkeypatch):
    """Three steps (one batch an epoch), outputs captured: the saved fingerprint is
    sum_k w_k out_k with w_k = decay^(3-k) normalised (the average starts at zero, so the
    untrained first output weighs 1/7 at decay 0.5)."""
    outputs = record_unet_outputs(monkeypatch)
    res, lab = _tiny_residuals(n=3)
    cfg = DIFConfig(seed=2, **{**SMALL, "epochs": 3, "batch_size": 6, "ema": 0.5})
    state = train_fingerprint(res, lab, cfg)
    assert len(outputs) == 3
    w = [0.25 / 1.75, 0.5 / 1.75, 1 / 1.75]
    expect = sum(wk * o.double() for wk, o in zip(w, outputs))
    torch.testing.assert_close(state.fingerprint.double(), expect, rtol=1e-5, atol=1e-6)


def test_booster_and_ema_and_centres():
    assert booster_loss(torch.tensor(0.004), torch.tensor(0.0), 0.01).item() == pytest.approx(0.6)
    assert booster_loss(torch.tensor(0.02), torch.tensor(0.0), 0.01).item() == 0.0
    z = ema_update(None, torch.tensor([1.0]))  # starts at zero
    z = ema_update(z, torch.tensor([0.0]), 0.99)
    assert (z / ema_norm(2, 0.99)).item() == pytest.approx(0.99 / (0.99 + 1.0))
    real = [9.0] * 5 + [1.0] * 20
    fake = [math.nan, 2.0, 4.0]
    assert centres(real, fake, 20) == (1.0, 3.0)
    np.testing.assert_array_equal(nearest_centre([0.0, 0.9, 2.1], 0.0, 1.0), [0, 1, 1])


def test_make_batches_never_leaves_a_single_sample():
    g = torch.Generator().manual_seed(0)
    batches = make_batches(9, 4, g)
    assert [len(b) for b in batches] == [4, 5]
    assert sorted(torch.cat(batches).tolist()) == list(range(9))


def _tiny_residuals(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    pattern = torch.zeros(1, 3, size, size)
    pattern[..., ::2, ::2] = 1.0
    pattern = pattern - pattern.mean()
    real = torch.randn(n, 3, size, size, generator=g)
    fake = torch.randn(n, 3, size, size, generator=g) + 0.5 * pattern
    return torch.cat([real, fake]), torch.tensor([0] * n + [1] * n)


SMALL = dict(width=8, depth=2, batch_size=8, epochs=6, lr=5e-3, crop=32)


def test_training_is_deterministic_for_a_seed():
    res, lab = _tiny_residuals()
    a = train_fingerprint(res, lab, DIFConfig(seed=3, **SMALL))
    b = train_fingerprint(res, lab, DIFConfig(seed=3, **SMALL))
    c = train_fingerprint(res, lab, DIFConfig(seed=4, **SMALL))
    assert torch.equal(a.fingerprint, b.fingerprint)
    assert a.loss == b.loss and a.train_real == b.train_real
    assert not torch.equal(a.fingerprint, c.fingerprint)
    assert a.fingerprint.shape == (1, 3, 32, 32)
    assert len(a.loss) == 6 * 2  # 12 images, batch 8 -> batches of 8 and 4


def test_training_separates_a_periodic_pattern():
    res, lab = _tiny_residuals(n=8)
    cfg = DIFConfig(seed=0, **dict(SMALL, epochs=40))
    state = train_fingerprint(res, lab, cfg)
    mu_r, mu_f = centres(state.train_real, state.train_fake)
    assert abs(mu_f - mu_r) > cfg.margin
    corr = pearson(state.fingerprint, res).numpy()
    pred = nearest_centre(corr, mu_r, mu_f)
    assert (pred == lab.numpy()).mean() == 1.0


def _first_step_loss(res, lab, **kw) -> float:
    """The loss of the first training step (one batch holding every residual)."""
    cfg = DIFConfig(seed=1, **{**SMALL, "epochs": 1, "batch_size": len(res), **kw})
    return train_fingerprint(res, lab, cfg).loss[0]


def test_alpha_changes_only_the_booster():
    """Alpha scales each residual by a random factor in [alpha, 1]. A Pearson correlation does not
    see a per-image scale, so without the booster alpha changes nothing (same draws, same loss);
    the booster correlates with the batch's class means, which the scales do change."""
    res, lab = _tiny_residuals()
    assert _first_step_loss(res, lab, alpha=0.5) == pytest.approx(_first_step_loss(res, lab, alpha=0.999999), rel=1e-5)
    # a wide margin keeps the booster term active (with 0.01 it is often 0 on these data)
    boosted = [_first_step_loss(res, lab, alpha=a, boost=True, margin=0.5) for a in (0.5, 0.999999)]
    assert abs(boosted[0] - boosted[1]) > 1e-4
    plain = train_fingerprint(res, lab, DIFConfig(seed=1, **SMALL))
    assert plain.loss != train_fingerprint(res, lab, DIFConfig(seed=1, boost=True, **SMALL)).loss


def test_booster_skipped_on_a_one_class_batch():
    """A batch of fakes only has no real mean: the booster must not run (no NaN, plain loss)."""
    res, lab = _tiny_residuals()
    fakes, ones = res[lab == 1], lab[lab == 1]
    a = _first_step_loss(fakes, ones, boost=True)
    assert math.isfinite(a) and a == pytest.approx(_first_step_loss(fakes, ones, boost=False))


@pytest.mark.parametrize("loss", ["paper", "ranking"])
def test_one_step_against_the_authors_formula(monkeypatch, loss):
    """One step recomputed by hand from the U-Net's output (captured): Pearson correlation per
    residual (float64, numpy), the pairwise loss (the paper's contrastive one, or the one-sided
    ranking one) over the pairs divided by the margin, the EMA after one step (the first output,
    up to a scale with the zero start), and the recorded class-mean correlations."""
    import dif.fingerprint as fpmod

    outputs = record_unet_outputs(monkeypatch)
    res, lab = _tiny_residuals(n=3)
    cfg = DIFConfig(seed=2, **{**SMALL, "epochs": 1, "batch_size": 6, "margin": 0.01, "loss": loss})
    gen = torch.Generator().manual_seed(cfg.seed)
    fpmod.fixed_noise(cfg, 32, 32, gen)  # the same draws as training: the noise, then the batch order
    order = make_batches(6, 6, gen)[0]
    state = train_fingerprint(res, lab, cfg)
    out = outputs[0].double().numpy().ravel()
    r = res[order].double().numpy().reshape(6, -1)
    y = lab[order].numpy()
    c = np.array([np.corrcoef(out, ri)[0, 1] for ri in r])
    pairs = [(0, 3), (1, 4), (2, 5)]  # element i of the first half with element i of the second
    if loss == "paper":
        terms = [abs(c[a] - c[b]) if y[a] == y[b] else max(0.0, 0.01 - abs(c[a] - c[b])) for a, b in pairs]
    else:  # a fake must lead the real of its pair by the margin; one class's pairs cost nothing
        terms = [0.0 if y[a] == y[b] else max(0.0, 0.01 - (c[a] - c[b]) * (1 if y[a] == 1 else -1)) for a, b in pairs]
    assert state.loss[0] == pytest.approx(np.mean(terms) / 0.01, rel=1e-4, abs=1e-6)
    # the EMA after one step is the first output (times 1 - decay): the recorded correlations are c's class means
    assert state.train_real[0] == pytest.approx(c[y == 0].mean(), abs=1e-5)
    assert state.train_fake[0] == pytest.approx(c[y == 1].mean(), abs=1e-5)


def test_bf16_training_still_finds_the_pattern_and_keeps_fp32_results():
    """--train-precision bf16 runs the U-Net under autocast; what it writes (the EMA fingerprint,
    the training correlations) is fp32, it is as deterministic, and it still separates the pattern."""
    res, lab = _tiny_residuals(n=8)
    cfg = DIFConfig(seed=0, train_precision="bf16", **dict(SMALL, epochs=40))
    state = train_fingerprint(res, lab, cfg)
    assert state.fingerprint.dtype == torch.float32
    assert state.loss == train_fingerprint(res, lab, cfg).loss
    assert state.loss != train_fingerprint(res, lab, DIFConfig(seed=0, **dict(SMALL, epochs=40))).loss
    mu_r, mu_f = centres(state.train_real, state.train_fake)
    assert (nearest_centre(pearson(state.fingerprint, res).numpy(), mu_r, mu_f) == lab.numpy()).mean() == 1.0
