"""``edgeprune bench``: every model file on every device, one result dict per pair."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from edgeprune import progress
from edgeprune.data import load_dataset
from edgeprune.data.dataset import SCALINGS
from edgeprune.data.sources import split_scaling
from edgeprune.errors import EdgepruneError
from edgeprune.harness.backends import backend_for, run_on_device
from edgeprune.harness.profiles import get_profile
from edgeprune.harness.runner_io import check_model_file, interpreter_for

BENCH_SCHEMA_VERSION = 1


def eval_arrays(data: str, eval_samples: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(x, y, description) for on-device accuracy: the first ``eval_samples`` test images.

    ``data`` is a dataset name, a dataset .npz (x_test/y_test), or an eval .npz with arrays x and y.
    """
    if eval_samples < 1:
        raise EdgepruneError("--eval-samples must be at least 1", "pass a positive number")

    name, scaling = split_scaling(data)
    path = Path(name).expanduser()
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as d:
            if "x" in d and "y" in d:
                x, y = d["x"][:eval_samples], d["y"][:eval_samples]
                if scaling and x.dtype == np.uint8:  # an eval .npz is fed as stored unless a :SCALING is given
                    mean, std = SCALINGS[scaling]
                    x = (x.astype(np.float32) - np.float32(mean)) / np.float32(std)
                return np.asarray(x, np.float32), np.asarray(y).astype(np.int64), f"{path} (x, y)"
    ds = load_dataset(data)
    return ds.x_test[:eval_samples], ds.y_test[:eval_samples], f"{data} test split"


def write_eval_npz(x: np.ndarray, y: np.ndarray, path: Path) -> Path:
    np.savez(path, x=np.asarray(x, np.float32), y=np.asarray(y, np.int64))
    return path


def result_line(result: dict) -> str:
    """The progress line of one finished run: file, device, its time (measured p50, or the estimated
    board time on an emulated board), accuracy, instructions."""
    acc, insn = result.get("accuracy"), result.get("instructions_per_inference")
    if result.get("board_time_ms") is not None:
        timing = f"{result['board_time']['board']} est. {result['board_time_ms']:.3f} ms"
    else:
        timing = f"p50 {(result.get('latency_ms') or {}).get('p50', float('nan')):.3f} ms"
    return (f"{Path(result['model_path']).name} on {result['device']}: {timing}"
            + (f", acc {acc:.4f}" if acc is not None else "") + (f", {insn:,} instructions" if insn else ""))


def add_agreement(results: list[dict]) -> None:
    """For each model, how often every device's top-1 matches the first device's (emulation parity)."""
    first: dict[str, dict] = {}
    for r in results:
        preds = r.get("predictions")
        if preds is None:
            continue
        ref = first.setdefault(r["model_path"], r)
        r["agreement_with"] = ref["device"]
        r["prediction_agreement"] = float(np.mean(np.asarray(preds) == np.asarray(ref["predictions"])))


def bench(model_files: list[Path | str], devices: list[str], data: str | None = None, runs: int = 50,
          warmup: int = 5, json_out: Path | str | None = None, eval_samples: int = 1000,
          host: str | None = None) -> list[dict]:
    if runs < 1 or warmup < 0:
        raise EdgepruneError("need --runs >= 1 and --warmup >= 0", "pass sensible counts")
    if not model_files:
        raise EdgepruneError("no model files to benchmark", "pass one or more .tflite/.onnx/.ort files")
    profiles = [get_profile(d) for d in (devices or ["host"])]  # fail on a bad name before any work
    models = [check_model_file(Path(m)) for m in model_files]
    for model in models:
        for profile in profiles:
            interpreter_for(profile, model)  # e.g. .onnx on a device without onnxruntime
    for profile in profiles:
        backend_for(profile).check(profile, host)  # e.g. no host for a board: say so before minutes of other runs
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgeprune-bench-") as tmp:
        eval_npz, eval_desc = None, None
        if data:
            x, y, eval_desc = eval_arrays(data, eval_samples)
            eval_npz = write_eval_npz(x, y, Path(tmp) / "eval.npz")
        with progress.task("benchmark", total=len(models) * len(profiles)) as shown:
            for model in models:
                for profile in profiles:
                    r = run_on_device(profile, model, eval_npz=eval_npz, runs=runs, warmup=warmup, host=host)
                    r["eval_data"] = eval_desc
                    results.append(r)
                    shown.report(result_line(r), completed=len(results))
    add_agreement(results)
    if json_out:
        Path(json_out).write_text(json.dumps({"schema_version": BENCH_SCHEMA_VERSION, "results": results}, indent=1))
    return results
