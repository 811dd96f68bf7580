"""Host runner and the shipped runner script, on real float/int8 TFLite and ONNX models."""
from __future__ import annotations

import json
import resource

import numpy as np
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import host_runner, runner
from edgeprune.harness.profiles import get_profile
from helpers.harness_models import harness_models


def reference_tflite_predictions(path, x):
    """Whole eval set in one batch through an in-process LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [len(x), *inp["shape"][1:]])
    interp.allocate_tensors()
    scale, zp = inp["quantization"]
    if inp["dtype"] == np.int8:
        x = np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return np.argmax(interp.get_tensor(out["index"]), axis=1)  # argmax is unchanged by dequantization


def reference_onnx_predictions(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.argmax(sess.run(None, {sess.get_inputs()[0].name: x})[0], axis=1)


@pytest.mark.parametrize("which", ["float_tflite", "int8_tflite", "onnx"])
def test_host_runner_latency_and_on_device_accuracy(which):
    m = harness_models()
    path = getattr(m, which)
    r = host_runner.run(get_profile("host"), path, eval_npz=m.eval_npz, runs=30, warmup=3)

    assert r["schema_version"] == 1 and r["device"] == "host" and r["emulated"] is False
    assert r["model_bytes"] == path.stat().st_size and r["model_path"] == str(path)
    assert r["interpreter"]["name"] == ("onnxruntime" if which == "onnx" else "ai_edge_litert")
    assert r["machine"] and r["python_version"] and r["numpy_version"] == np.__version__ and r["threads"] == 1
    lat = r["latency_ms"]
    assert len(r["latencies_ms"]) == 30 and all(t > 0 for t in r["latencies_ms"])
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
    assert r["init_ms"] > 0 and r["first_inference_ms"] > 0

    reference = (reference_onnx_predictions if which == "onnx" else reference_tflite_predictions)(path, m.x_eval)
    assert r["eval_samples"] == len(m.y_eval)
    np.testing.assert_array_equal(r["predictions"], reference)
    assert r["accuracy"] == pytest.approx(float(np.mean(reference == m.y_eval)))
    if which != "int8_tflite":  # float files agree with Keras itself
        assert np.mean(np.asarray(r["predictions"]) == m.keras_predictions) >= 0.99
    if which == "int8_tflite":
        assert r["inputs"][0]["dtype"] == "int8" and r["inputs"][0]["scale"] > 0


def test_peak_rss_is_the_runners_own_not_the_parents():
    """ru_maxrss survives execve on Linux; the runner must not report this (TensorFlow-sized) process."""
    m = harness_models()  # TensorFlow is loaded in this process now
    r = host_runner.run(get_profile("host"), m.float_tflite, runs=5, warmup=1)
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 5e6 < r["peak_rss_bytes"] < parent_peak
    assert r["timing_input"] == "random" and r["accuracy"] is None and r["predictions"] is None


def test_markers_wrap_exactly_the_timed_invocations(monkeypatch, tmp_path):
    """4242/4243 pairs once per timed run; none for first inference, warm-up or the accuracy pass (warm-up
    goes through the same loop with the inert 4240, so the timed runs find it equally warm)."""
    m = harness_models()
    calls = []
    order = []
    monkeypatch.setattr(runner.os, "sched_get_priority_max", lambda v: calls.append(v) or order.append(v) or 0)
    real_load = runner.load_model

    def counting_load(*a):
        model = real_load(*a)
        inner = model.invoke
        model.invoke = lambda: (order.append("invoke"), inner())
        return model

    monkeypatch.setattr(runner, "load_model", counting_load)
    out = tmp_path / "r.json"
    runner.main([str(m.int8_tflite), "--runs", "7", "--warmup", "3", "--eval", str(m.eval_npz), "--out", str(out)])
    assert [c for c in calls if c != runner.MARK_IDLE] == [4242, 4243] * 7
    first_marker = order.index(4242)
    assert order[:first_marker] == ["invoke"] + [4240, "invoke", 4240] * 3  # first inference + 3 warm-up
    assert order[first_marker:first_marker + 21] == [4242, "invoke", 4243] * 7
    assert order[first_marker + 21:] == ["invoke"] * len(m.y_eval)  # accuracy pass, unmarked
    assert json.loads(out.read_text())["runs"] == 7


def test_missing_tflite_interpreter_is_a_clear_error():
    try:
        import tflite_runtime  # noqa: F401
        pytest.skip("tflite_runtime is installed here")
    except ImportError:
        pass
    host = get_profile("host")
    profile = type(host)(**{**host.model_dump(), "interpreter": {"tflite": "tflite_runtime"}})
    with pytest.raises(DeviceError, match="no TFLite interpreter .* pip install tflite-runtime"):
        host_runner.run(profile, harness_models().float_tflite, runs=1, warmup=0)


def test_eval_data_of_the_wrong_shape_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 32, 32, 3), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DeviceError, match=r"eval sample shape \[32, 32, 3\] does not fit the model input \[1, 28, 28, 1\]"):
        host_runner.run(get_profile("host"), harness_models().float_tflite, eval_npz=bad, runs=1, warmup=0)
