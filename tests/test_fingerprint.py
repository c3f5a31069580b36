import math

import numpy as np
import pytest
import torch

from dif.config import DIFConfig
from dif.fingerprint import (booster_loss, centres, contrastive_loss, ema_update, make_batches, nearest_centre,
                             pearson, train_fingerprint)


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


def test_booster_and_ema_and_centres():
    assert booster_loss(torch.tensor(0.004), torch.tensor(0.0), 0.01).item() == pytest.approx(0.6)
    assert booster_loss(torch.tensor(0.02), torch.tensor(0.0), 0.01).item() == 0.0
    e = ema_update(None, torch.tensor([1.0]))
    e = ema_update(e, torch.tensor([0.0]), 0.99)
    assert e.item() == pytest.approx(0.99)
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


def test_boost_and_alpha_run_and_are_used():
    res, lab = _tiny_residuals()
    plain = train_fingerprint(res, lab, DIFConfig(seed=1, **SMALL))
    boosted = train_fingerprint(res, lab, DIFConfig(seed=1, boost=True, **SMALL))
    alpha = train_fingerprint(res, lab, DIFConfig(seed=1, alpha=0.5, **SMALL))
    assert plain.loss != boosted.loss
    assert not torch.equal(plain.fingerprint, alpha.fingerprint)
