"""TFLite / ONNX export of a briefly trained LeNet-5 on real Fashion-MNIST, checked for parity."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError

QUANT_CASES = [("tflite", "none"), ("tflite", "int8"), ("tflite", "fp16"), ("tflite", "dynamic"),
               ("onnx", "none"), ("onnx", "int8")]


@pytest.fixture(scope="module")
def data(fashion_small):
    """The session's shared Fashion-MNIST slice (tests/conftest.py)."""
    return fashion_small


@pytest.fixture(scope="module")
def trained(trained_lenet5):
    """The session's shared trained LeNet-5 (tests/e2e/conftest.py)."""
    return trained_lenet5


@pytest.fixture(scope="module")
def exports(trained, data, tmp_path_factory):
    """Every mode exported once; {(fmt, quant): path}."""
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.tflite import export_tflite

    out = tmp_path_factory.mktemp("exports")
    calib = data.calibration_samples(200)
    paths = {}
    for fmt, quant in QUANT_CASES:
        path = out / f"lenet5-{quant}.{fmt}"
        fn = export_tflite if fmt == "tflite" else export_onnx
        assert fn(trained, path, quant=quant, calibration=calib if quant == "int8" else None) == path
        paths[(fmt, quant)] = path
    return paths


@pytest.mark.slow  # needs the trained model
@pytest.mark.parametrize("fmt,quant", QUANT_CASES)
def test_export_mode_parity(fmt, quant, exports, trained, data):
    from edgeprune.export.parity import assert_parity, check_parity

    path = exports[(fmt, quant)]
    r = check_parity(path, trained, data.x_test, data.y_test)
    print(fmt, quant, {k: r[k] for k in ("file_bytes", "accuracy", "keras_accuracy", "top1_agreement", "max_abs_diff")})
    assert (r["format"], r["quant"], r["samples"]) == (fmt, quant, len(data.x_test))
    assert r["keras_accuracy"] > 0.7
    if quant == "none":
        assert r["within_tolerance"] is True and r["max_abs_diff"] <= 1e-4
        assert r["top1_agreement"] == 1.0
        assert_parity(r)
    else:  # float16 is judged by |Δ| against its own tolerance, quantized files by agreement
        assert r["within_tolerance"] is (True if quant == "fp16" else None)
        assert r["top1_agreement"] >= 0.98
        assert abs(r["accuracy"] - r["keras_accuracy"]) <= 0.02
    if quant == "int8":
        assert r["file_bytes"] < 0.35 * exports[(fmt, "none")].stat().st_size
    if quant == "fp16":
        assert 0.45 < r["file_bytes"] / exports[(fmt, "none")].stat().st_size < 0.55


@pytest.mark.slow  # needs the trained model
def test_int8_io_tflite(trained, data, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgeprune.export.parity import check_parity
    from edgeprune.export.runtime import predict
    from edgeprune.export.tflite import export_tflite

    path = export_tflite(trained, tmp_path / "io.tflite", quant="int8", calibration=data.calibration_samples(200),
                         int8_io=True)
    interp = Interpreter(model_path=str(path))
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    r = check_parity(path, trained, data.x_test, data.y_test)
    assert r["quant"] == "int8" and r["top1_agreement"] >= 0.98
    # per-sample and batched inference give the same dequantized outputs
    np.testing.assert_array_equal(predict(path, data.x_test[:20], batch_size=1), predict(path, data.x_test[:20]))


@pytest.mark.slow  # needs the trained model
def test_float_parity_failure_is_refused(exports, trained, data):
    """The float file compared against a model with changed weights must fail the parity check."""
    from edgeprune.export.parity import assert_parity, check_parity
    from edgeprune.keras import keras

    other = keras.models.clone_model(trained)
    other.set_weights([w * 1.05 for w in trained.get_weights()])
    r = check_parity(exports[("tflite", "none")], other, data.x_test[:100], data.y_test[:100])
    assert r["within_tolerance"] is False
    with pytest.raises(EdgepruneError, match=r"export parity failed: max \|Δ\| = .* > 1e-04"):
        assert_parity(r)


@pytest.mark.slow  # needs the trained model
def test_int8_without_calibration_writes_nothing(trained, tmp_path):
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.tflite import export_tflite

    with pytest.raises(EdgepruneError, match="calibration"):
        export_tflite(trained, tmp_path / "m.tflite", quant="int8")
    with pytest.raises(EdgepruneError, match="calibration"):
        export_onnx(trained, tmp_path / "m.onnx", quant="int8")
    with pytest.raises(EdgepruneError, match="calibration samples have shape"):
        export_tflite(trained, tmp_path / "m.tflite", quant="int8", calibration=np.zeros((4, 32, 32, 1), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_keras_applications_mobilenetv2_float_parity(data, tmp_path):
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.parity import assert_parity, check_parity
    from edgeprune.export.tflite import export_tflite
    from edgeprune.keras import keras

    model = keras.applications.MobileNetV2(input_shape=(32, 32, 1), weights=None, classes=10, alpha=0.35)
    x = np.pad(data.x_test[:200], ((0, 0), (2, 2), (2, 2), (0, 0)))  # real images, 28→32
    # untrained BN statistics make every output ~uniform: take them from real images instead
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)
    assert model.predict(x, verbose=0).std(axis=0).max() > 1e-3
    for path in (export_tflite(model, tmp_path / "mnv2.tflite"), export_onnx(model, tmp_path / "mnv2.onnx")):
        r = assert_parity(check_parity(path, model, x, data.y_test[:200]))
        print(path.name, r["file_bytes"], r["max_abs_diff"])
        assert r["max_abs_diff"] <= 1e-4 and r["top1_agreement"] == 1.0
