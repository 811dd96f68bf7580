"""`edgeprune bench` / `edgeprune devices`: bench() over models × devices, the JSON file, the tables."""
from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.harness.bench import bench
from edgeprune.harness.cli import bench_cmd, devices_cmd
from helpers.harness_models import harness_models


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("bench")(bench_cmd)
    app.command("devices")(devices_cmd)
    return app


def test_bench_models_times_devices_with_json(tmp_path):
    m = harness_models()
    two_threads = tmp_path / "host2.yaml"
    two_threads.write_text("kind: host\narch: native\ncpu: native\nthreads: 2\n")
    out = tmp_path / "bench.json"
    results = bench([m.int8_tflite, m.onnx], ["host", str(two_threads)], data=str(m.eval_npz), runs=8, warmup=1,
                    json_out=out, eval_samples=50)

    assert [(r["device"], r["model_path"]) for r in results] == [
        ("host", str(m.int8_tflite)), ("host2", str(m.int8_tflite)), ("host", str(m.onnx)), ("host2", str(m.onnx))]
    assert [r["threads"] for r in results] == [1, 2, 1, 2]
    for r in results:
        assert r["eval_samples"] == 50 and len(r["latencies_ms"]) == 8 and r["latency_ms"]["p50"] > 0
        assert r["prediction_agreement"] == 1.0  # same file, same predictions on 1 or 2 threads
        assert r["agreement_with"] == "host"
        assert r["accuracy"] == pytest.approx(np.mean(np.asarray(r["predictions"]) == m.y_eval[:50]))
    saved = json.loads(out.read_text())
    assert saved["schema_version"] == 1 and len(saved["results"]) == 4
    assert saved["results"][0]["model_bytes"] == m.int8_tflite.stat().st_size


def test_unknown_device_fails_before_any_run(tmp_path):
    with pytest.raises(DeviceError, match="unknown device 'nope'"):
        bench([tmp_path / "missing.tflite"], ["host", "nope"])
    with pytest.raises(EdgepruneError, match="runs >= 1"):
        bench([harness_models().float_tflite], ["host"], runs=0)


def test_board_without_a_host_fails_before_any_run(monkeypatch):
    import edgeprune.harness.bench as bench_module

    monkeypatch.delenv("RPI_HOST", raising=False)
    monkeypatch.setattr(bench_module, "run_on_device", lambda *a, **k: pytest.fail("ran before checking"))
    with pytest.raises(DeviceError, match="no SSH host for device 'rpi4'"):
        bench([harness_models().float_tflite], ["host", "rpi4"], runs=1)


def test_onnx_on_a_device_without_onnxruntime_is_a_clear_error():
    with pytest.raises(DeviceError, match="qemu-armv7 has no ONNX runtime"):
        bench([harness_models().onnx], ["qemu-armv7"], runs=1)


def test_cli_bench_prints_the_table_and_writes_json(tmp_path):
    m = harness_models()
    out = tmp_path / "r.json"
    res = CliRunner().invoke(_app(), ["bench", str(m.float_tflite), "--device", "host", "--data", str(m.eval_npz),
                                      "--runs", "5", "--warmup", "1", "--eval-samples", "20", "--json", str(out)],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for header in ("device", "model", "bytes", "ms", "p90 ms", "init ms", "peak RSS MB", "accuracy", "instr/inference",
                   "ms: measured p50 after warm-up"):
        assert header in res.output
    row = [ln for ln in res.output.splitlines() if "tiny_float.tflite" in ln][-1]  # the table, after the progress line
    assert f"{m.float_tflite.stat().st_size:,}" in row and "%" in row
    assert json.loads(out.read_text())["results"][0]["eval_samples"] == 20
