"""QAT with tfmot: skip_layers, unsupported layers, prune-preserving scheme, save/load round trip,
and a DS-CNN (BatchNorm + DepthwiseConv2D) fine-tuned with QAT and exported to TFLite int8 / ONNX QDQ."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import layers


def _wrapped(model):
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper

    return {l.layer.name for l in model.layers if isinstance(l, QuantizeWrapper)}


def test_skip_layers_keep_named_layers_float():
    from edgeprune import zoo
    from edgeprune.quantize.qat import quantize_qat

    model = zoo.build("lenet5")
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_config import OutputOnlyConfig

    q = quantize_qat(model, skip_layers=["fc2", "conv[0-9]"])
    assert type(q.get_layer("fc2")).__name__ == "Dense"  # last layer: not wrapped at all
    assert _wrapped(q) == {"conv1", "conv2", "pool1", "pool2", "flatten", "fc1"}
    for name in ("conv1", "conv2"):  # feed quantized layers: tfmot quantizes only their output
        config = q.get_layer(f"quant_{name}").quantize_config
        assert isinstance(config, OutputOnlyConfig) and config.get_weights_and_quantizers(None) == []
    assert not isinstance(q.get_layer("quant_fc1").quantize_config, OutputOnlyConfig)
    np.testing.assert_array_equal(q.get_layer("fc2").kernel.numpy(), model.get_layer("fc2").kernel.numpy())
    with pytest.raises(EdgepruneError, match=r"skip_layers entries \['fc3'\] match no layer"):
        quantize_qat(model, skip_layers=["fc3"])


class Square(layers.Layer):
    """A custom layer tfmot has no quantize config for."""

    def call(self, x):
        return x * x


def test_unsupported_layer_is_named_and_skippable():
    from edgeprune.keras import keras
    from edgeprune.quantize.qat import quantize_qat

    inp = keras.Input((8, 8, 1), name="input")
    x = layers.Conv2D(4, 3, name="conv")(inp)
    x = Square(name="custom_square")(x)
    x = layers.Flatten(name="flat")(x)
    model = keras.Model(inp, layers.Dense(3, name="out")(x))
    with pytest.raises(EdgepruneError, match=r"layer 'custom_square' \(Square\).*add it to quantize.skip_layers"):
        quantize_qat(model)
    q = quantize_qat(model, skip_layers=["custom_square"])
    assert "custom_square" not in _wrapped(q) and "out" in _wrapped(q)
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    assert np.isfinite(q.predict(x, verbose=0)).all()


def test_save_qat_refuses_keras_format(tmp_path):
    from edgeprune import zoo
    from edgeprune.quantize.qat import quantize_qat, save_qat

    with pytest.raises(EdgepruneError, match=r"\.keras"):
        save_qat(quantize_qat(zoo.build("lenet5")), tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []
