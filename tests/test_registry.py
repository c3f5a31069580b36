"""Every registered method through the same steps, as timm tests its models: made on a tiny set,
saved, loaded back through the registry, scored; the scores after the reload are identical."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dif.artificial.weights import DEFAULT_DECODER
from dif.config import DIFConfig
from dif.data import find_labelled
from dif.deepfeaturex.train import DFXConfig
from dif.errors import DIFError
from dif.evaluate import score_images
from dif.methods import get_method, load_method, method_names

TINY = {
    "dif": DIFConfig(crop=32, epochs=2, batch_size=8, augment=0, extractor="highpass", checkpoint_every=2),
    "dif-ensemble": DIFConfig(crop=32, epochs=2, batch_size=8, augment=0, extractor="ensemble:highpass,wavelet-dwt",
                              checkpoint_every=2),
    "deepfeaturex": DFXConfig(image_size=32, epochs=1, batch_size=4),
}


def _artificial_detector(folder):
    """Artificial fingerprints are not fitted on real / fake images: their detector is the shipped
    decoder and a database of users, as ``python -m dif.artificial detector`` makes it."""
    from dif.artificial.bits import random_bits
    from dif.artificial.method import ArtificialMethod
    from dif.artificial.weights import load_model

    dec = load_model(DEFAULT_DECODER, "decoder")
    db = random_bits(3, dec.fingerprint_length, torch.Generator().manual_seed(0)).numpy().astype(np.uint8)
    m = ArtificialMethod(dec, ["a", "b", "c"], db)
    m.save(folder)
    return m


def test_every_registered_method_is_covered():
    assert set(method_names()) == set(TINY) | {"artificial"}


@pytest.mark.parametrize("name", method_names())
def test_fit_save_load_score_round_trip(name, tiny_data, tmp_path):
    data = find_labelled(tiny_data)
    folder = tmp_path / "check"
    folder.mkdir()
    if name == "artificial":
        with pytest.raises(DIFError, match="dif.artificial"):
            get_method(name).build(None)
        made = _artificial_detector(folder)
    else:
        made = get_method(name).build(TINY[name])
        made.fit(data.paths, data.labels, device=torch.device("cpu"))
        made.save(folder)
    loaded = load_method(folder)
    assert type(loaded) is type(made) and loaded.name == name
    before = score_images({"m": made}, data.paths, data.labels, workers=0)
    after = score_images({"m": loaded}, data.paths, data.labels, workers=0)
    assert len(before.scores["m"]) == len(data.paths)
    np.testing.assert_array_equal(before.scores["m"], after.scores["m"])
    assert loaded.threshold == made.threshold
