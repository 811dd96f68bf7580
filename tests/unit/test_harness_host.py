"""Host runner and the shipped runner script, on real float/int8 TFLite and ONNX models."""
from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import host_runner, runner
from edgeprune.harness.profiles import get_profile


def test_not_a_model_file(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(DeviceError, match="not a .tflite or .onnx or .ort file"):
        host_runner.run(get_profile("host"), tmp_path / "m.h5")
    with pytest.raises(DeviceError, match="model file not found"):
        host_runner.run(get_profile("host"), tmp_path / "missing.tflite")


def test_quantize_input_rounds_and_saturates():
    x = np.array([0.0, 0.2, 1.0, -1.0, 2.0], np.float32)
    q = runner.quantize_input(x, np.int8, 1 / 255, -128)
    np.testing.assert_array_equal(q, np.array([-128, -77, 127, -128, 127], np.int8))
    u = runner.quantize_input(x, np.uint8, 1 / 255, 0)
    np.testing.assert_array_equal(u, np.array([0, 51, 255, 0, 255], np.uint8))
    assert runner.quantize_input(x, np.float32, 0.0, 0).dtype == np.float32
    y = runner.dequantize_output(np.array([-128, 0, 127], np.int8), 0.5, -128)
    np.testing.assert_allclose(y, [0.0, 64.0, 127.5])


def test_latency_summary_percentiles():
    s = runner.latency_summary([i * 1_000_000 for i in range(1, 101)])  # 1..100 ms
    assert s["min"] == 1 and s["max"] == 100 and s["mean"] == 50.5
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
