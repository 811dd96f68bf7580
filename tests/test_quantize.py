"""QAT with tfmot: skip_layers, unsupported layers, prune-preserving scheme, save/load round trip,
and a DS-CNN (BatchNorm + DepthwiseConv2D) fine-tuned with QAT and exported to TFLite int8 / ONNX QDQ."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import layers


@pytest.fixture(scope="module")
def data():
    from edgeprune.data import load_dataset

    return load_dataset("fashion_mnist").subset(train=4000, val=500, test=500)


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


@pytest.mark.slow  # trains
def test_prune_preserve_keeps_sparsity_through_qat(data, tmp_path):
    from edgeprune import train, zoo
    from edgeprune.quantize.qat import load_qat, quantize_qat, save_qat

    model = zoo.build("lenet5")
    for name in ("conv2", "fc1"):  # 50% unstructured magnitude sparsity
        layer = model.get_layer(name)
        k, b = layer.get_weights()
        k[np.abs(k) < np.median(np.abs(k))] = 0.0
        layer.set_weights([k, b])
    q = quantize_qat(model, scheme="prune_preserve")
    train.fit(q, data.subset(train=1000), epochs=1, batch_size=64, patience=None)
    for name in ("conv2", "fc1"):
        wrapper = q.get_layer(f"quant_{name}")
        kernel = next(w for w in wrapper.trainable_weights if w.name.endswith("kernel:0")).numpy()
        assert np.mean(kernel == 0) >= 0.49, name
    path = save_qat(q, tmp_path / "pp.h5")
    x = data.x_test[:50]
    np.testing.assert_array_equal(load_qat(path).predict(x, verbose=0), q.predict(x, verbose=0))


def test_save_qat_refuses_keras_format(tmp_path):
    from edgeprune import zoo
    from edgeprune.quantize.qat import quantize_qat, save_qat

    with pytest.raises(EdgepruneError, match=r"\.keras"):
        save_qat(quantize_qat(zoo.build("lenet5")), tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_qat_dscnn_batchnorm_depthwise_train_save_export(data, tmp_path):
    import onnx

    from edgeprune import train, zoo
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.parity import check_parity
    from edgeprune.export.tflite import export_tflite
    from edgeprune.keras import layers
    from edgeprune.quantize.qat import is_qat_model, load_qat, quantize_qat, save_qat

    model = zoo.build("dscnn")
    for layer in model.layers:  # running statistics must settle within a 250-step test run
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.9
    train.fit(model, data, epochs=2, batch_size=32, patience=None)
    q = quantize_qat(model)
    assert {"ds1_dw", "stem_conv", "classifier"} <= _wrapped(q)
    fit = train.fit(q, data, epochs=1, batch_size=32, learning_rate=1e-4, patience=None)
    assert fit.val_accuracy > 0.6

    for path in (save_qat(q, tmp_path / "qat.h5"), save_qat(q, tmp_path / "qat_savedmodel")):
        loaded = load_qat(path)
        assert is_qat_model(loaded)
        np.testing.assert_array_equal(loaded.predict(data.x_test, verbose=0), q.predict(data.x_test, verbose=0))

    tfl = export_tflite(loaded, tmp_path / "qat.tflite", quant="int8")
    onx = export_onnx(loaded, tmp_path / "qat.onnx")
    ops = {n.op_type for n in onnx.load(str(onx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    for path in (tfl, onx):
        r = check_parity(path, loaded, data.x_test, data.y_test)
        print(path.name, {k: r[k] for k in ("file_bytes", "accuracy", "keras_accuracy", "top1_agreement", "max_abs_diff")})
        assert r["quant"] == "int8" and r["top1_agreement"] >= 0.98
