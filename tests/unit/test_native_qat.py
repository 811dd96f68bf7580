"""Native (Keras 3) quantization-aware training: graph rewrite, BN folding, full-int8 TFLite, .keras round trip."""
from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.export.tflite import convert_tflite

from edgeprune.quantize import native_qat as nq  # noqa: E402

keras = nq.keras
L = keras.layers


@pytest.fixture(autouse=True)
def seeded():
    """Every model starts from the same initial weights (a flaky threshold is no test)."""
    keras.utils.set_random_seed(0)


def test_folded_layer_trains_like_conv_plus_batchnorm():
    """In training mode the fused layer gives batch-normalized outputs (the Jacob et al. correction)."""
    rng = np.random.default_rng(1)
    i = keras.Input((9, 9, 3))
    h = L.Conv2D(4, 3, name="c")(i)
    model = keras.Model(i, L.BatchNormalization(name="bn")(h))
    model.get_layer("bn").moving_variance.assign(rng.uniform(0.5, 2.0, 4).astype("f4"))
    qat = nq.quantize_native(model)
    x = rng.normal(size=(32, 9, 9, 3)).astype("f4")
    ref = model(x, training=True).numpy()
    got = qat(x, training=True).numpy()
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    # and it updated the moving statistics like BN does
    np.testing.assert_allclose(qat.get_layer("c").bn_moving_mean.numpy(), model.get_layer("bn").moving_mean.numpy(),
                               atol=1e-2)


def with_layer_norm():
    i = keras.Input((28, 28, 1), name="img")
    h = L.Conv2D(8, 3, activation="relu", name="c1")(i)
    h = L.LayerNormalization(name="ln")(h)
    h = L.Conv2D(8, 3, activation="relu", name="c2")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(i, L.Dense(10, name="fc")(h), name="with_ln")


def test_unsupported_layer_names_itself_and_skip_keeps_it_float(mnist):
    model = with_layer_norm()
    with pytest.raises(EdgepruneError) as err:
        nq.quantize_native(model)
    assert "'ln'" in err.value.problem and "LayerNormalization" in err.value.problem
    assert "skip_layers" in err.value.fix
    with pytest.raises(EdgepruneError, match="matches no layer"):
        nq.quantize_native(model, skip_layers=["nope"])

    qat = nq.quantize_native(model, skip_layers=["l[n]"])  # a regular expression
    assert type(qat.get_layer("ln")).__name__ == "LayerNormalization"
    assert type(qat.get_layer("c2")).__name__ == "QuantConv2D"
    np.testing.assert_array_equal(qat.get_layer("ln").gamma.numpy(), model.get_layer("ln").gamma.numpy())
    ops = nq.tflite_ops(convert_tflite(qat, quant="int8"))
    convs = [op for op in ops if op["op"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(convs) == 3 and all(op["inputs"][:2] == ["int8", "int8"] for op in convs)
    # the LayerNormalization runs float between a DEQUANTIZE and a QUANTIZE
    names = [op["op"] for op in ops]
    assert names.count("DEQUANTIZE") >= 2 and names.count("QUANTIZE") >= 2
    assert any(op["inputs"] and op["inputs"][0] == "float32" for op in ops if op["op"] not in ("QUANTIZE",))

    swish = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="swish", name="sw")])
    with pytest.raises(EdgepruneError, match="'sw'.*silu"):
        nq.quantize_native(swish)


def test_rejects_what_it_cannot_rewrite():
    from edgeprune.keras import keras as tf_keras

    tfk = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    with pytest.raises(EdgepruneError, match="Keras 3") as err:
        nq.quantize_native(tfk)
    assert "to_keras3" in err.value.fix
    i = keras.Input((8, 8, 1))
    h = L.Conv2D(4, 3, name="c")(i)
    lone_bn = keras.Model(i, [h, L.BatchNormalization(name="bn")(h)])  # conv output also read elsewhere
    with pytest.raises(EdgepruneError, match="'bn'"):
        nq.quantize_native(lone_bn)
    qat = nq.quantize_native(keras.Model(i, h))
    with pytest.raises(EdgepruneError, match="already quantization-aware"):
        nq.quantize_native(qat)
