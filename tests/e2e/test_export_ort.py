"""ORT format (ONNX Runtime Mobile) export, and the TFLite metadata sidecar apps read."""
import json

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError


@pytest.fixture(scope="module")
def data(fashion_small):
    """The session's shared Fashion-MNIST slice (tests/conftest.py)."""
    return fashion_small


@pytest.fixture(scope="module")
def trained(trained_lenet5):
    """The session's shared trained LeNet-5 (tests/e2e/conftest.py)."""
    return trained_lenet5


@pytest.fixture(scope="module")
def twins(trained, data, tmp_path_factory):
    """{quant: (.onnx, .ort)}: the .ort converted from its .onnx twin by onnxruntime."""
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.ort import onnx_to_ort

    out = tmp_path_factory.mktemp("ort")
    pairs = {}
    for quant in ("none", "int8"):
        onnx_file = export_onnx(trained, out / f"lenet5-{quant}.onnx", quant=quant,
                                calibration=data.calibration_samples(100) if quant == "int8" else None)
        ort_file, _ = onnx_to_ort(onnx_file, out / f"lenet5-{quant}.ort")
        pairs[quant] = (onnx_file, ort_file)
    return pairs


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_ort_loads_and_matches_its_onnx_twin(quant, twins, data):
    from edgeprune.export import runtime
    from edgeprune.export.ort import config_path, operators

    onnx_file, ort_file = twins[quant]
    assert ort_file.read_bytes()[4:8] == b"ORTM"  # the ORT flatbuffer's file identifier, not a renamed .onnx
    a = runtime.predict(onnx_file, data.x_test)
    b = runtime.predict(ort_file, data.x_test)
    agreement = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    print(quant, "max |Δ|", float(np.abs(a - b).max()), "top-1 agreement", agreement)
    if quant == "none":
        assert np.abs(a - b).max() <= 1e-5
    assert agreement >= 0.99
    assert runtime.quant_mode(ort_file) == quant
    # the config beside it lists exactly the operators the .ort file uses, as "domain;opset;Op,Op"
    config = config_path(ort_file).read_text().splitlines()
    listed = {op for line in config if not line.startswith("#") for op in line.split(";")[2].split(",")}
    assert listed == set().union(*operators(ort_file).values())
    assert config[0].startswith("# Operators used by the .ort model")


def test_damaged_ort_file_is_refused_in_one_line(twins, tmp_path):
    from edgeprune.export.runtime import check_exported_file

    _, ort_file = twins["none"]
    cut = tmp_path / "cut.ort"
    cut.write_bytes(ort_file.read_bytes()[:6])
    onnx_named = tmp_path / "renamed.ort"
    onnx_named.write_bytes(twins["none"][0].read_bytes())  # an .onnx file under the .ort name
    for bad in (cut, onnx_named):
        with pytest.raises(EdgepruneError, match="not a complete ORT-format file"):
            check_exported_file(bad)
    check_exported_file(ort_file)


def test_ort_runs_in_the_device_runner(twins, data, tmp_path):
    """harness/runner.py (what boards run) loads the .ort file with onnxruntime."""
    from edgeprune.harness.bench import bench, write_eval_npz

    _, ort_file = twins["none"]
    npz = write_eval_npz(data.x_test[:50], data.y_test[:50], tmp_path / "eval.npz")
    r, = bench([ort_file], ["host"], data=str(npz), runs=3, warmup=1, eval_samples=50)
    assert (r["format"], r["interpreter"]["name"], r["eval_samples"]) == ("ort", "onnxruntime", 50)
    assert r["accuracy"] > 0.5 and r["latency_ms"]["p50"] > 0


def test_export_cli_writes_ort_and_its_config(trained, tmp_path, capsys):
    from edgeprune.export.cli import export_cmd

    model_file = tmp_path / "m.keras"
    trained.save(model_file)
    out = tmp_path / "app" / "m.ort"
    result = export_cmd(model_file, format="ort", output=out, parity_data="fashion_mnist", parity_samples=100)
    assert result["format"] == "ort" and result["within_tolerance"] is True
    assert out.is_file() and (tmp_path / "app" / "m.required_operators.config").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.ort", "m.required_operators.config"]  # no temp left
    assert f"wrote {tmp_path / 'app' / 'm.required_operators.config'}" in capsys.readouterr().out
    with pytest.raises(EdgepruneError, match="quant 'fp16' is not available for ort"):
        export_cmd(model_file, format="ort", quant="fp16", output=tmp_path / "x.ort")


def test_tflite_metadata_sidecar(trained, data, tmp_path):
    from edgeprune.export.metadata import write_tflite_metadata
    from edgeprune.export.tflite import export_tflite

    tfl = export_tflite(trained, tmp_path / "m.tflite")
    written = write_tflite_metadata(tfl, trained, data)
    meta = json.loads(written["metadata"].read_text())
    inp = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
    out = meta["subgraph_metadata"][0]["output_tensor_metadata"][0]
    # Fashion-MNIST pixels are fed as pixel / 255: TFLite metadata says mean 0, std 255
    assert inp["process_units"] == [{"options_type": "NormalizationOptions", "options": {"mean": [0.0], "std": [255.0]}}]
    assert inp["content"]["content_properties"]["color_space"] == "GRAYSCALE"
    assert out["name"] == "probability"  # lenet5 ends in a softmax
    assert out["associated_files"][0] == {"name": "m.labels.txt", "description": "Labels for the output classes, in order.",
                                          "type": "TENSOR_AXIS_LABELS"}
    assert written["labels"].read_text().splitlines() == data.class_names

    # a logits model over data that were not 8-bit pixels: no normalization claimed, no labels invented
    from edgeprune.data.dataset import make_dataset
    from edgeprune.keras import keras

    logits = keras.Model(trained.inputs, keras.layers.Dense(10)(trained.layers[-2].output))
    floats = make_dataset("floats", data.x_train[:50], data.y_train[:50], data.x_test[:50], data.y_test[:50],
                          val_fraction=0.0, seed=0)
    assert floats.pixel_scale is None
    written = write_tflite_metadata(tmp_path / "l.tflite", logits, floats)
    meta = json.loads(written["metadata"].read_text())
    inp = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
    out = meta["subgraph_metadata"][0]["output_tensor_metadata"][0]
    assert "process_units" not in inp and out["name"] == "logits" and "associated_files" not in out
    assert written["labels"] is None


@pytest.mark.qemu
@pytest.mark.slow
def test_ort_on_the_emulated_aarch64_board_matches_host(tmp_path):
    """The guest's onnxruntime (aarch64) loads the .ort file, and predicts what the host predicts."""
    from edgeprune.errors import DeviceError
    from edgeprune.export.ort import onnx_to_ort
    from edgeprune.harness import host_runner, qemu_runner
    from edgeprune.harness.profiles import get_profile
    from edgeprune.harness.qemu import ensure_env
    from helpers.harness_models import harness_models

    try:
        ensure_env("aarch64", build=False)
    except DeviceError as e:
        pytest.skip(f"emulated aarch64 board not available: {e}")
    m = harness_models()
    ort_file, _ = onnx_to_ort(m.onnx, tmp_path / "tiny.ort")
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=m.x_eval[:30], y=m.y_eval[:30])
    host = host_runner.run(get_profile("host"), ort_file, eval_npz=npz, runs=2, warmup=0)
    emu = qemu_runner.run(get_profile("qemu-aarch64"), ort_file, eval_npz=npz, runs=2, warmup=0)
    assert (emu["format"], emu["interpreter"]["name"], emu["machine"]) == ("ort", "onnxruntime", "aarch64")
    assert emu["predictions"] == host["predictions"] and emu["instructions_per_inference"] > 0
