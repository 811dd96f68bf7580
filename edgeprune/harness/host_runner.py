"""Run the benchmark runner on this machine, in a fresh Python process (clean RSS, no TensorFlow)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import DeviceError
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, batch_args, check_model_file, interpreter_for,
                                         read_result, runner_args, runner_failure, unpack_batch)

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

KIND = "host"
EMULATED = False
USES_HOST = False


def check(profile: DeviceProfile, host: str | None = None) -> None:
    """This machine is always reachable."""


def ready(profile: DeviceProfile) -> None:
    """Nothing to set up."""


def run(profile: DeviceProfile, model_path: Path, *, eval_npz: Path | None = None, runs: int = 50,
        warmup: int = 5, host: str | None = None, timeout_s: float = 1800) -> dict:
    model_path = check_model_file(Path(model_path))
    where = f"device {profile.name} (this machine)"
    with tempfile.TemporaryDirectory(prefix="edgeprune-host-") as tmp:
        out = Path(tmp) / "result.json"
        args = runner_args(profile, str(model_path.resolve()), str(out),
                           eval_npz=str(Path(eval_npz).resolve()) if eval_npz else None,
                           runs=runs, warmup=warmup, interpreter=interpreter_for(profile, model_path))
        try:
            proc = subprocess.run([sys.executable, str(RUNNER_SCRIPT), *args], capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"benchmark on {where} took over {timeout_s:.0f} s",
                              "use fewer --runs or a smaller eval set") from None
        if proc.returncode != 0:
            raise runner_failure(proc.returncode, proc.stderr, where)
        result = read_result(out, where)
    return annotate(result, profile, model_path)


def runtime_version(profile: DeviceProfile) -> str:
    """The installed interpreter package, e.g. ``ai-edge-litert==2.1.0``."""
    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}[profile.interpreter.tflite]
    try:
        return f"{dist}=={version(dist)}"
    except PackageNotFoundError:
        return f"{dist}==missing"


def run_batch(profile: DeviceProfile, paths: list[Path], *, runs: int, warmup: int, host: str | None = None,
              timeout_s: float = 3600) -> list[dict]:
    """Several files measured in one runner process on this machine."""
    where = f"device {profile.name} (this machine)"
    interpreter = interpreter_for(profile, paths[0])
    with tempfile.TemporaryDirectory(prefix="edgeprune-batch-") as tmp:
        out = Path(tmp) / "result.json"
        args = batch_args(profile, [str(p.resolve()) for p in paths], str(out), runs, warmup, interpreter)
        try:
            proc = subprocess.run([sys.executable, str(RUNNER_SCRIPT), *args], capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"batch benchmark on {where} took over {timeout_s:.0f} s", "measure fewer files at once") from None
        if proc.returncode != 0:
            raise runner_failure(proc.returncode, proc.stderr, where)
        return unpack_batch(read_result(out, where), len(paths), where)
