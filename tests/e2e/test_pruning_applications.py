"""Keras Applications (weights=None, small inputs): prune 30%, equivalence, save/reload, TFLite."""
import numpy as np
import pytest

from edgeprune.keras import keras
from edgeprune.pruning import model_stats
from helpers.pruning import prune_and_check, randomize_batchnorm

APPS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(48, 48, 3), classifier_activation=None),
    "ResNet50": lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classifier_activation=None),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classifier_activation=None),
    "DenseNet121": lambda: keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), classifier_activation=None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPS))
def test_application_prunes_equivalently(name, tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = randomize_batchnorm(APPS[name]())
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype("float32")
    pruned, plan, before, after = prune_and_check(model, x, ratio=0.3)
    assert after["macs"] < before["macs"] and after["params"] < before["params"]
    path = tmp_path / f"{name}.keras"
    pruned.save(path)
    reloaded = keras.models.load_model(path)  # no custom objects
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    tflite = tf.lite.TFLiteConverter.from_keras_model(pruned).convert()
    assert len(tflite) > 0
