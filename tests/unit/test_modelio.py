"""Carrying models between Keras 3 and tf-keras: load -> equal outputs; save back -> plain Keras of
the original flavor (clean process, no edgeprune, no custom objects) loads it -> equal outputs.

Inputs are real Fashion-MNIST test images.  One clean child process per flavor checks every file.
"""
import pytest

from edgeprune.keras import keras as tfk
from edgeprune.modelio import from_keras3, load_model, save_model, to_keras3
from edgeprune import zoo
from helpers.modelio_checks import assert_close, predict, randomize


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
