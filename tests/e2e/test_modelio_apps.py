"""Keras 3 applications (weights=None, small inputs, random BN statistics): Keras 3 .keras -> tf-keras
gives equal logits; saved back, plain Keras 3 in a clean process gives equal logits too."""
import numpy as np
import pytest

from edgeprune.data import load_dataset
from edgeprune.errors import ModelLoadError
from edgeprune.modelio import read_model, save_model
from edgeprune.modelio.verify import predict_in_clean_keras

APPS = {"MobileNetV2": 96, "ResNet50": 64, "EfficientNetB0": 64, "DenseNet121": 64, "MobileNetV3Small": 96}


def randomize_bn(model, seed=0):
    """Untrained BN layers make logits ~1e-10; random statistics make the comparison meaningful."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i in (0, 3)
                               else rng.normal(0, 0.1, w.shape).astype("float32")
                               for i, w in enumerate(layer.get_weights())])


def real_rgb(size):
    """Real Fashion-MNIST images, resized and tiled to RGB in [0, 255] (the apps' input range)."""
    import tensorflow as tf

    x = load_dataset("fashion_mnist").x_test[:4]
    return np.repeat(tf.image.resize(x, (size, size)).numpy(), 3, axis=-1) * 255.0


def close(a, b):
    return float(np.abs(a - b).max()) <= 1e-5 * max(1.0, float(np.abs(a).max()))


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    import keras

    d = tmp_path_factory.mktemp("apps")
    runs, jobs = {}, []
    for name, size in APPS.items():
        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, name)(input_shape=(size, size, 3), weights=None, classes=10,
                                                  classifier_activation=None)
        randomize_bn(model)
        x = real_rgb(size)
        model.save(d / f"{name}.keras")
        loaded = read_model(d / f"{name}.keras")
        back = save_model(loaded.model, d / f"{name}_back.keras")
        runs[name] = {"ref": np.asarray(model(x)), "got": np.asarray(loaded.model(x)), "loaded": loaded}
        jobs.append((back, x))
    _, outs = predict_in_clean_keras("keras3", jobs)
    for name, out in zip(APPS, outs):
        runs[name]["clean"] = out[0]
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", list(APPS))
def test_keras3_application_carried_both_ways(app_runs, name):
    run = app_runs[name]
    assert run["loaded"].flavor == "keras3" and float(np.abs(run["ref"]).max()) > 1e-3
    assert close(run["ref"], run["got"])
    assert close(run["ref"], run["clean"])


@pytest.mark.slow
def test_application_with_unsupported_layer_names_it(tmp_path):
    """ConvNeXt's LayerScale is a Keras-3-only class: a clear error naming layer and class."""
    import keras

    model = keras.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None, classes=10)
    model.save(tmp_path / "cnx.keras")
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "cnx.keras")
    assert "LayerScale" in str(err.value) and "\n" not in str(err.value)
