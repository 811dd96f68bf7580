"""Carrying models between Keras 3 and tf-keras: load -> equal outputs; save back -> plain Keras of
the original flavor (clean process, no edgeprune, no custom objects) loads it -> equal outputs.

Inputs are real Fashion-MNIST test images.  One clean child process per flavor checks every file.
"""
import numpy as np
import pytest

from edgeprune.keras import keras as tfk
from edgeprune.modelio import from_keras3, load_model, save_model, to_keras3
from edgeprune import zoo

TOL = 1e-5


def as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def predict(model, x):
    return [np.asarray(t) for t in as_list(model(x, training=False))]


def assert_close(ref, got, tol=TOL):
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        scale = max(1.0, float(np.abs(a).max()))
        assert float(np.abs(a - b).max()) <= tol * scale, float(np.abs(a - b).max())


def randomize(model, seed=0):
    """Non-trivial weights everywhere (BN statistics included), so a wrong copy cannot pass."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "layers"):
            randomize(layer, seed + 1)
            continue
        values = []
        for w, v in zip(layer.weights, layer.get_weights()):
            r = rng.normal(0, 0.3, v.shape).astype(v.dtype)
            values.append(np.abs(r) + 0.5 if "variance" in w.name else r)
        if values:
            layer.set_weights(values)
    return model


# ---- models, written once for either Keras (K = keras or tf_keras) -----------------------------


@pytest.fixture(scope="module")
def images(fashion_mnist):
    return fashion_mnist.x_test[:16]


# ---- in-memory translation, both directions -------------------------------------------------------

def test_to_keras3_then_from_keras3_is_exact(images):
    tfk.utils.set_random_seed(1)
    original = randomize(zoo.build("mobilenetv2"))
    k3 = to_keras3(original)
    assert type(k3).__module__.startswith("keras.")
    back = from_keras3(k3)
    ref = predict(original, images)
    assert_close(ref, predict(k3, images))
    assert_close(ref, predict(back, images))
    assert [w.name.split("/")[0] for w in back.weights][:3] == [w.name.split("/")[0] for w in original.weights][:3]


def test_load_model_returns_the_tf_keras_model(tmp_path, images):
    tfk.utils.set_random_seed(2)
    original = randomize(zoo.build("lenet5"))
    path = save_model(original, tmp_path / "m.keras")         # default flavor: Keras 3 file
    import zipfile, json

    assert json.loads(zipfile.ZipFile(path).read("metadata.json"))["keras_version"].startswith("3.")
    model = load_model(path)
    assert isinstance(model, tfk.Model)
    assert_close(predict(original, images), predict(model, images))
