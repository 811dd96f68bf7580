"""Ratios, rounding, overrides, global pruning, and plans that replay on a fresh model."""

import numpy as np
import pytest

from edgeprune import zoo
from helpers.pruning import randomize_batchnorm

X = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")


HEAVY_ZOO = {"mobilenetv2", "resnet8"}  # minutes on two cores: run with the slow tests


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_ZOO else n
                                  for n in sorted(zoo.MODELS)])
def test_zoo_models_prune_equivalently(name, tmp_path):
    from helpers.pruning import prune_and_check

    m = randomize_batchnorm(zoo.build(name))
    pruned, plan, before, after = prune_and_check(m, X, ratio=0.5)
    assert after["macs"] < 0.7 * before["macs"]
    from edgeprune.keras import keras

    pruned.save(tmp_path / "p.keras")
    again = keras.models.load_model(tmp_path / "p.keras")
    np.testing.assert_allclose(again.predict(X, verbose=0), pruned.predict(X, verbose=0), atol=1e-6)
