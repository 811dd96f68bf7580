"""Emulated ARM boards: guest Python, LiteRT/onnxruntime parity and deterministic instruction counts.

Tests that need the built rootfs skip (with the command that builds it) when it is absent; CI
builds it with `python -m edgeprune.harness.qemu build`.
"""
import json
import os
import textwrap

import numpy as np
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness.qemu import MARK_CLOSE, MARK_OPEN, ensure_env, run_python

pytestmark = pytest.mark.qemu

INPUT_SHAPE = (1, 24, 24, 8)

# The guest side of the marker protocol, as the benchmark runner implements it.
GUEST_LITERT = textwrap.dedent(f"""
    import json, os, sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    def marker(n):
        try:
            os.sched_get_priority_max(n)
        except OSError:
            pass

    outputs = {{}}
    for name in sys.argv[1:]:
        it = Interpreter(model_path=name, num_threads=1)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        x = (np.arange(np.prod(inp["shape"])) % 17 / 16.0).astype(np.float32).reshape(inp["shape"])
        for _ in range(3):
            it.set_tensor(inp["index"], x)
            marker({MARK_OPEN})
            it.invoke()
            marker({MARK_CLOSE})
        outputs[name] = it.get_tensor(out["index"]).ravel().astype(float).tolist()
    print(json.dumps(outputs))
""")

GUEST_ORT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [1] + list(inp.shape[1:])
    x = (np.arange(np.prod(shape)) % 17 / 16.0).astype(np.float32).reshape(shape)
    print(json.dumps(sess.run(None, {inp.name: x})[0].ravel().astype(float).tolist()))
""")


def _input(shape):
    return (np.arange(np.prod(shape)) % 17 / 16.0).astype(np.float32).reshape(shape)


@pytest.fixture(scope="module")
def aarch64():
    try:
        return ensure_env("aarch64", build=False)
    except DeviceError as exc:
        pytest.skip(f"emulated aarch64 board not built: {exc}")


def _conv_net(filters: int, seed: int):
    """One 3x3 conv dominates the MACs: halving `filters` halves the work."""
    from edgeprune.keras import keras, layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(INPUT_SHAPE[1:])
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _to_tflite(model, path):
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _host_litert(path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], _input(inp["shape"]))
    it.invoke()
    return it.get_tensor(out["index"]).ravel()


# --- under emulation -------------------------------------------------------------------------------

def test_guest_is_aarch64_and_writes_come_back(aarch64, tmp_path):
    script = tmp_path / "where.py"
    script.write_text("import os, platform\nprint(platform.machine(), os.cpu_count())\n"
                      "open('out.txt', 'w').write('hi')\n")
    res = run_python(aarch64, script, [], count_instructions=False, timeout_s=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["aarch64", "1"]  # fake sysfs: one core
    assert res.files["out.txt"].read_text() == "hi"
    assert res.cpu == "cortex-a72" and res.region_instructions == []


def test_unknown_cpu_model_is_refused(aarch64, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("pass\n")
    with pytest.raises(DeviceError, match="cortex-a72"):
        run_python(aarch64, script, [], cpu="cortex-a999")


@pytest.mark.slow
def test_litert_counts_are_deterministic_track_macs_and_match_host(aarch64, tmp_path):
    big = _to_tflite(_conv_net(32, seed=0), tmp_path / "big.tflite")
    half = _to_tflite(_conv_net(16, seed=1), tmp_path / "half.tflite")
    script = tmp_path / "guest_litert.py"
    script.write_text(GUEST_LITERT)

    runs = [run_python(aarch64, script, ["big.tflite", "half.tflite"], files=[big, half], timeout_s=300)
            for _ in range(2)]
    for res in runs:
        assert res.returncode == 0, res.stderr[-2000:]
        assert len(res.region_instructions) == 6
    first, second = (r.region_instructions for r in runs)
    assert first == second, "instruction counts differ between two identical runs"

    per_invoke_big, per_invoke_half = min(first[:3]), min(first[3:])
    assert per_invoke_half < 0.7 * per_invoke_big, (per_invoke_big, per_invoke_half)

    guest = json.loads(runs[0].stdout)
    for name, path in (("big.tflite", big), ("half.tflite", half)):
        np.testing.assert_allclose(np.array(guest[name]), _host_litert(path), rtol=0, atol=1e-5)
    print(f"\naarch64 cortex-a72 instructions per invoke: big={first[:3]} half={first[3:]}")


@pytest.mark.slow
def test_onnxruntime_runs_in_guest_and_matches_host(aarch64, tmp_path):
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    model = _conv_net(8, seed=2)
    spec = (tf.TensorSpec((None, *INPUT_SHAPE[1:]), tf.float32, name="input"),)
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    path = tmp_path / "net.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    script = tmp_path / "guest_ort.py"
    script.write_text(GUEST_ORT)

    res = run_python(aarch64, script, [path.name], files=[path], count_instructions=False, timeout_s=300)
    assert res.returncode == 0, res.stderr[-2000:]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    host = sess.run(None, {sess.get_inputs()[0].name: _input(INPUT_SHAPE)})[0].ravel()
    np.testing.assert_allclose(np.array(json.loads(res.stdout)), host, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_armv7_tflite_runtime_counts(tmp_path):
    try:
        env = ensure_env("armv7", build=False)
    except DeviceError as exc:
        pytest.skip(f"emulated armv7 board not built: {exc}")
    model = _to_tflite(_conv_net(16, seed=3), tmp_path / "m.tflite")
    script = tmp_path / "guest_armv7.py"
    script.write_text(GUEST_LITERT.replace("from ai_edge_litert.interpreter", "from tflite_runtime.interpreter"))
    res = run_python(env, script, [model.name], files=[model], timeout_s=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(res.region_instructions) == 3 and min(res.region_instructions) > 0
    np.testing.assert_allclose(np.array(json.loads(res.stdout)["m.tflite"]), _host_litert(model),
                               rtol=0, atol=1e-5)
