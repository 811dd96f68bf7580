"""The equivalence check can fail: a deliberately broken surgery is caught, even on untrained models
whose softmax outputs do not move; its summary lands in plan.json; weak checks say so."""

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras
from edgeprune.pruning import prune, verify_pruning


@pytest.mark.slow
def test_untrained_mobilenetv3_broken_surgery_is_caught_though_softmax_does_not_move(broken_conv_surgery):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    pruned, plan = prune(model, 0.3)
    # comparing softmax outputs at 1e-4, the round-1 check, would have passed this broken model
    assert np.abs(model.predict(x, verbose=0) - pruned.predict(x, verbose=0)).max() < 1e-4
    with pytest.raises(EdgepruneError, match="differs from the zeroed original"):
        verify_pruning(model, pruned, plan, x)
