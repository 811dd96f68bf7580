"""The export-target registry: one registration makes a format usable by the export step's schema,
the host runtime, the parity check and the device harness (no TensorFlow needed here)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.export import parity, runtime, targets
from edgeprune.export.targets import ExportOptions, ExportTarget, get_target, target_for_file
from edgeprune.harness.profiles import DeviceProfile
from edgeprune.harness.runner_io import check_model_file, interpreter_for
from edgeprune.recipe.steps.export import ExportStep

W = np.array([[1.0, -1.0], [0.5, 2.0]], np.float32)


class _LinearKeras:
    """Stands in for a Keras model: y = x @ W."""

    def predict(self, x, batch_size=256, verbose=0):
        return np.asarray(x).reshape(len(x), -1) @ W


def _write(model, path, *, quant, calibration=None, options=ExportOptions()):
    with open(path, "wb") as f:
        np.save(f, W.astype(np.float16) if quant == "fp16" else W, allow_pickle=False)
    return path


def _predict(path, x, batch_size, num_threads):
    with open(path, "rb") as f:
        return (np.asarray(x).reshape(len(x), -1) @ np.load(f).astype(np.float32)).astype(np.float32)


def _read_precision(path):
    with open(path, "rb") as f:
        return "fp16" if np.load(f).dtype == np.float16 else "none"


@pytest.fixture
def linear_target(monkeypatch):
    targets.targets()  # built-ins first
    monkeypatch.setattr(targets, "_TARGETS", dict(targets._TARGETS))
    return targets.register(ExportTarget(
        name="linear", suffix=".lin", precisions=("none", "fp16"), write=_write, predict=_predict,
        read_precision=_read_precision, interpreter_key="onnx"))


def test_builtin_targets_are_registered():
    assert list(targets.targets())[:2] == ["tflite", "onnx"]
    assert get_target("TFLite").suffix == ".tflite" and target_for_file("m.onnx").name == "onnx"
    assert "fp16" in get_target("tflite").precisions and "fp16" not in get_target("onnx").precisions
    assert get_target("tflite").needs_calibration("int8", qat=False)
    assert not get_target("tflite").needs_calibration("int8", qat=True)
    assert not get_target("onnx").needs_calibration("none", qat=False)


def test_unknown_format_and_suffix_are_one_clear_error():
    with pytest.raises(EdgepruneError, match="unknown export format 'coreml'"):
        get_target("coreml")
    with pytest.raises(EdgepruneError, match="unknown model file type '.mlmodel'"):
        runtime.file_format("m.mlmodel")
    with pytest.raises(DeviceError, match="not a .tflite or .onnx or .ort file"):
        check_model_file("m.mlmodel")
    with pytest.raises(ValueError, match="suffix .tflite is already tflite's"):
        targets.register(ExportTarget(name="other", suffix=".tflite", precisions=("none",), write=_write,
                                      predict=_predict, read_precision=_read_precision, interpreter_key="tflite"))


def test_one_registration_reaches_schema_runtime_parity_and_harness(linear_target, tmp_path):
    assert ExportStep(formats=["linear"]).formats == ["linear"]
    with pytest.raises(ValueError, match="unknown export format"):
        ExportStep(formats=["tflite", "coreml"])

    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    for quant in ("none", "fp16"):
        path = linear_target.write(_LinearKeras(), tmp_path / f"m-{quant}.lin", quant=quant)
        assert runtime.quant_mode(path) == quant
        np.testing.assert_allclose(runtime.predict(path, x), x @ W, atol=1e-2)
        result = parity.check_parity(path, _LinearKeras(), x)
        assert result["format"] == "linear" and result["quant"] == quant
        assert result["max_abs_diff"] == (0.0 if quant == "none" else pytest.approx(0.0, abs=1e-2))

    host = DeviceProfile(name="h", kind="host", arch="x", cpu="x")
    no_onnx = DeviceProfile(name="board", kind="host", arch="x", cpu="x", interpreter={"onnx": None})
    assert check_model_file(path) == path
    assert interpreter_for(host, path) == "onnxruntime"
    with pytest.raises(DeviceError, match="board has no ONNX runtime for .lin files"):
        interpreter_for(no_onnx, path)
