import numpy as np
import pytest
import torch

from dif.detect import Detector, detection_metrics
from dif.spectrum import log_spectrum, peak_ratio, spectrum_image, to_hwc


def test_spectrum_peaks_at_the_pattern_frequency():
    h = w = 32
    xx = np.arange(w)
    img = np.tile(np.cos(2 * np.pi * xx / 4)[None, :, None], (h, 1, 3))  # period 4 along x
    s = log_spectrum(img)
    assert s.shape == (h, w)
    iy, ix = np.unravel_index(np.argmax(s), s.shape)
    assert iy == h // 2 and abs(ix - w // 2) == w // 4  # +-1/4 cycles per pixel
    assert peak_ratio(img) > 100 > peak_ratio(np.random.default_rng(0).normal(size=(32, 32, 3)))
    si = spectrum_image(torch.from_numpy(img.transpose(2, 0, 1)).unsqueeze(0))
    assert si.min() >= 0 and si.max() <= 1


def test_to_hwc_layouts():
    assert to_hwc(np.zeros((1, 3, 5, 7))).shape == (5, 7, 3)
    assert to_hwc(np.zeros((5, 7, 3))).shape == (5, 7, 3)
    assert to_hwc(np.zeros((5, 7))).shape == (5, 7, 1)


def test_metrics_by_hand_and_orientation():
    det = Detector(torch.zeros(1, 3, 4, 4), mu_real=0.0, mu_fake=0.01)
    corr = np.array([-0.002, 0.001, 0.007, 0.012, 0.004, 0.02])
    labels = np.array([0, 0, 0, 1, 1, 1])
    m = detection_metrics(corr, labels, det)
    assert m["threshold"] == pytest.approx(0.005)
    assert m["real_accuracy"] == pytest.approx(2 / 3) and m["fake_accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of 9 (fake, real) pairs ordered
    assert m["n_real"] == 3 and m["n_fake"] == 3
    # A fingerprint whose fakes correlate negatively: AUC stays oriented toward fakes.
    neg = Detector(torch.zeros(1, 3, 4, 4), mu_real=0.0, mu_fake=-0.01)
    m2 = detection_metrics(-corr, labels, neg)
    assert m2["auc"] == pytest.approx(m["auc"]) and m2["accuracy"] == pytest.approx(m["accuracy"])


def test_detector_correlate_batches():
    g = torch.Generator().manual_seed(0)
    fp = torch.randn(1, 3, 8, 8, generator=g)
    res = torch.randn(7, 3, 8, 8, generator=g)
    det = Detector(fp, 0.0, 0.1)
    np.testing.assert_allclose(det.correlate(res, batch=3), det.correlate(res), rtol=1e-6)
