"""QEMU runner: the emulated board computes what the host computes, and counts instructions repeatably.

Needs the cached emulated boards (``make qemu-rootfs``); skipped with the reason when absent.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import host_runner, qemu_runner
from edgeprune.harness.profiles import get_profile
from helpers.harness_models import harness_models

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

EVAL_N = 40  # emulated inferences are ~100× slower than native; a small real slice is enough


def _require_env(arch: str):
    from edgeprune.harness.qemu import ensure_env

    try:
        return ensure_env(arch, build=False)
    except DeviceError as e:
        pytest.skip(f"emulated {arch} board not available: {e}")


@pytest.fixture(scope="module")
def aarch64():
    return _require_env("aarch64")


@pytest.fixture(scope="module")
def armv7():
    return _require_env("armv7")


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory):
    m = harness_models()
    path = tmp_path_factory.mktemp("qemu-eval") / "eval.npz"
    np.savez(path, x=m.x_eval[:EVAL_N], y=m.y_eval[:EVAL_N])
    return path


def _output_tolerance(model_path) -> float:
    """One quantization step of the output for int8 files; float rounding otherwise."""
    from ai_edge_litert.interpreter import Interpreter

    if model_path.suffix != ".tflite":
        return 1e-5
    scale = Interpreter(model_path=str(model_path)).get_output_details()[0]["quantization"][0]
    return scale * 1.01 if scale else 1e-5


@pytest.mark.parametrize("which", ["int8_tflite", "float_tflite"])
def test_emulated_aarch64_matches_host_and_counts_repeatably(aarch64, which, small_eval):
    path = getattr(harness_models(), which)
    profile = get_profile("qemu-aarch64")
    host = host_runner.run(get_profile("host"), path, eval_npz=small_eval, runs=3, warmup=1)
    first = qemu_runner.run(profile, path, eval_npz=small_eval, runs=3, warmup=1)
    second = qemu_runner.run(profile, path, eval_npz=small_eval, runs=3, warmup=1)

    assert first["emulated"] is True and "emulator_ms is the emulator's own wall-clock, not board time" in first["note"]
    assert "latency_ms" not in first and first["emulator_ms"]["p50"] > 0  # emulator time is never a latency
    assert first["machine"] == "aarch64" and first["cpu"] == "cortex-a72" and first["device"] == "qemu-aarch64"
    assert first["predictions"] == host["predictions"] and first["accuracy"] == host["accuracy"]
    np.testing.assert_allclose(first["timing_output"], host["timing_output"], atol=_output_tolerance(path))

    assert first["instructions_per_inference"] > 10_000
    assert len(first["instructions_all"]) == 3
    assert first["instructions_all"] == second["instructions_all"]  # deterministic, run after run
    assert first["board_time"]["board"] == "Raspberry Pi 4 Model B" and first["board_time_ms"] > 0
    assert (first["board_time_ms"], first["instruction_mix"], first["cache_misses_per_level"]) == \
        (second["board_time_ms"], second["instruction_mix"], second["cache_misses_per_level"])


def test_dotprod_cpu_changes_the_int8_instruction_count(aarch64):
    """A76 (dotprod) runs other int8 kernels than A72: the profile's CPU really reaches qemu."""
    path = harness_models().int8_tflite
    a72 = qemu_runner.run(get_profile("qemu-aarch64"), path, runs=2, warmup=0)
    a76 = qemu_runner.run(get_profile("qemu-aarch64-a76"), path, runs=2, warmup=0)
    assert a76["cpu"] == "cortex-a76"
    assert a72["instructions_per_inference"] != a76["instructions_per_inference"]
    # which XNNPACK kernels ran: the A72's int8 GEMMs widen and accumulate (no dot product), the A76's use SDOT
    a72_classes, a76_classes = a72["board_time"]["classes"], a76["board_time"]["classes"]
    assert a72_classes.get("int_mul_long", 0) > 0 and a72_classes.get("int_pairwise_acc", 0) > 0
    assert "int_dot" not in a72_classes and a76_classes.get("int_dot", 0) > 0
    np.testing.assert_allclose(a72["timing_output"], a76["timing_output"], atol=_output_tolerance(path))


def test_emulated_onnx_matches_host(aarch64, small_eval):
    path = harness_models().onnx
    host = host_runner.run(get_profile("host"), path, eval_npz=small_eval, runs=2, warmup=0)
    emu = qemu_runner.run(get_profile("qemu-aarch64"), path, eval_npz=small_eval, runs=2, warmup=0)
    assert emu["interpreter"]["name"] == "onnxruntime" and emu["predictions"] == host["predictions"]
    assert emu["instructions_per_inference"] > 0


def test_emulated_armv7_tflite_runtime_matches_host(armv7, small_eval):
    path = harness_models().int8_tflite
    host = host_runner.run(get_profile("host"), path, eval_npz=small_eval, runs=2, warmup=0)
    emu = qemu_runner.run(get_profile("qemu-armv7"), path, eval_npz=small_eval, runs=2, warmup=0)
    assert emu["interpreter"]["name"] == "tflite_runtime" and emu["machine"] == "armv7l"
    assert emu["predictions"] == host["predictions"]
    assert emu["instructions_per_inference"] > 0
