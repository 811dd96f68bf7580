"""Precisions of a TFLite file: float16 halves the bytes within its tolerance; a mixed file runs
exactly the chosen layers in float and everything else in int8 (read from the flatbuffer)."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError


@pytest.fixture(scope="module")
def data(fashion_mnist):
    return fashion_mnist.subset(train=1500, val=100, test=300)


def small_cnn():
    """A LeNet-like CNN (conv1 has one input channel) whose last Dense outputs logits; its TFLite op is
    then named after the signature (``StatefulPartitionedCall:0``), not the layer."""
    from edgeprune.keras import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 5, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPool2D(name="pool")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="fc")(x))


@pytest.fixture(scope="module")
def logits_model(data):
    from edgeprune.keras import keras

    model = small_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=64, verbose=0)
    return model


def _layer_precisions(path, model) -> dict[str, str]:
    from edgeprune.export.runtime import tflite_compute_ops
    from edgeprune.quantize.selective import compute_layers, op_layer

    names = set(compute_layers(model))
    out = {}
    for op in tflite_compute_ops(path):
        layer = op_layer(op["output"], op["weights"], names)
        assert layer is not None, op
        assert op["input_dtype"] == op["weight_dtype"], op  # no hybrid ops
        out[layer] = op["input_dtype"]
    return out


@pytest.mark.parametrize("keep", [("conv1",), ("conv2", "fc")])
def test_mixed_file_keeps_exactly_the_chosen_layers_float(keep, logits_model, data, tmp_path):
    from edgeprune.export.parity import check_parity
    from edgeprune.export.tflite import export_tflite

    path = export_tflite(logits_model, tmp_path / "m.tflite", quant="mixed", keep_float=keep,
                         calibration=data.calibration_samples(100))
    want = {layer: "float32" if layer in keep else "int8" for layer in ("conv1", "conv2", "fc")}
    assert _layer_precisions(path, logits_model) == want
    r = check_parity(path, logits_model, data.x_test, data.y_test)
    assert r["quant"] == "mixed" and r["within_tolerance"] is None  # quantized: judged by agreement
    assert r["top1_agreement"] >= 0.97 and abs(r["accuracy"] - r["keras_accuracy"]) <= 0.02


def test_int8_and_float16_files_read_back_and_meet_their_tolerances(logits_model, data, tmp_path):
    from edgeprune.export.parity import check_parity
    from edgeprune.export.tflite import export_tflite

    paths = {q: export_tflite(logits_model, tmp_path / f"{q}.tflite", quant=q, calibration=data.calibration_samples(100)
                              if q == "int8" else None) for q in ("none", "fp16", "int8")}
    assert set(_layer_precisions(paths["int8"], logits_model).values()) == {"int8"}
    assert set(_layer_precisions(paths["fp16"], logits_model).values()) == {"float32"}  # weights dequantized once
    results = {q: check_parity(p, logits_model, data.x_test, data.y_test) for q, p in paths.items()}
    assert [results[q]["quant"] for q in paths] == ["none", "fp16", "int8"]
    assert results["fp16"]["within_tolerance"] is True and results["fp16"]["top1_agreement"] >= 0.99
    assert 0 < results["fp16"]["max_abs_diff"] <= results["fp16"]["tolerance"] < 1.0
    assert 0.45 < results["fp16"]["file_bytes"] / results["none"]["file_bytes"] < 0.55


def test_mixed_export_errors(logits_model, data, tmp_path):
    from edgeprune.export.tflite import export_tflite

    calib = data.calibration_samples(20)
    with pytest.raises(EdgepruneError, match="needs the layers to keep float"):
        export_tflite(logits_model, tmp_path / "a.tflite", quant="mixed", calibration=calib)
    with pytest.raises(EdgepruneError, match=r"keep_float names \['flatten', 'nope'\], which are not conv / dense"):
        export_tflite(logits_model, tmp_path / "b.tflite", quant="mixed", calibration=calib, keep_float=["flatten", "nope"])
    with pytest.raises(EdgepruneError, match="keep_float only applies to quant 'mixed'"):
        export_tflite(logits_model, tmp_path / "c.tflite", quant="int8", calibration=calib, keep_float=["conv1"])
    with pytest.raises(EdgepruneError, match="needs calibration data"):
        export_tflite(logits_model, tmp_path / "d.tflite", quant="mixed", keep_float=["conv1"])
    assert not list(tmp_path.iterdir())


# --- which layers stay float on a device -------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.slow
def test_a72_keeps_the_one_channel_first_conv_float_and_the_mixed_file_costs_fewer_instructions(tmp_path, monkeypatch):
    """Cortex-A72 (no dotprod): a 1-input-channel 5×5 conv is far cheaper in float than int8 (anchors.md);
    the per-layer table (isolated layers, measured now) picks it, and the whole mixed file confirms it."""
    from edgeprune.devicecost.precision import plan_mixed
    from edgeprune.export.tflite import export_tflite
    from edgeprune.harness.backends import run_on_device
    from edgeprune.harness.profiles import get_profile

    monkeypatch.setenv("EDGEPRUNE_COST_DIR", str(tmp_path / "cost"))  # measure, do not reuse a table
    model = small_cnn()
    calib = np.random.default_rng(0).uniform(0, 1, (32, 28, 28, 1)).astype(np.float32)

    [plan] = plan_mixed(model, ["qemu-aarch64"], calib, log=print)
    table = plan["tables"]["qemu-aarch64"]
    assert table["metric"] == "board_ms" and set(table["deltas"]) == {"conv1", "conv2", "fc"}
    assert plan["keep_float"][0] == "conv1" and table["deltas"]["conv1"] < -0.2 * table["int8_cost"]
    mixed = export_tflite(model, tmp_path / "mixed.tflite", quant="mixed", calibration=calib, keep_float=plan["keep_float"])
    whole = run_on_device(get_profile("qemu-aarch64"), mixed, eval_npz=None, runs=3, warmup=1)
    assert whole["board_time_ms"] < table["int8_cost"]
