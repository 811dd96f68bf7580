"""QAT with tfmot: skip_layers, unsupported layers, prune-preserving scheme, save/load round trip,
and a DS-CNN (BatchNorm + DepthwiseConv2D) fine-tuned with QAT and exported to TFLite int8 / ONNX QDQ."""
import numpy as np
import pytest

from edgeprune.keras import layers


@pytest.fixture(scope="module")
def data(fashion_mnist):
    return fashion_mnist.subset(train=4000, val=500, test=500)


def _wrapped(model):
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper

    return {l.layer.name for l in model.layers if isinstance(l, QuantizeWrapper)}


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
