"""What the host, QEMU and SSH runners share: the runner's argv, its exit codes, and the result dict."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import DeviceError
from edgeprune.export.runtime import check_exported_file
from edgeprune.export.targets import find_target_for_file, suffixes
from edgeprune.harness import runner as _runner_script

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

RUNNER_SCRIPT = Path(_runner_script.__file__).resolve()

# Exit codes defined by runner.py, mapped to what the user should do on that device.
_MISSING = {
    _runner_script.EXIT_NO_TFLITE: ("no TFLite interpreter (ai_edge_litert or tflite_runtime) on {where}",
                                    "install one on it: pip install tflite-runtime (or pip install ai-edge-litert)"),
    _runner_script.EXIT_NO_ONNXRUNTIME: ("onnxruntime is not installed on {where}",
                                         "install it there: pip install onnxruntime"),
    _runner_script.EXIT_NO_NUMPY: ("numpy is not installed (or does not import) on {where}",
                                   "install it there: pip install numpy"),
}


def check_model_file(model_path: Path) -> Path:
    model_path = Path(model_path)
    if find_target_for_file(model_path) is None:
        raise DeviceError(f"cannot benchmark {model_path}: not a {' or '.join(suffixes())} file",
                          "export the model first (edgeprune export) and pass the exported file")
    if not model_path.is_file():
        raise DeviceError(f"model file not found: {model_path}", "check the path")
    check_exported_file(model_path)
    return model_path


def interpreter_for(profile: DeviceProfile, model_path: Path) -> str:
    """The interpreter the file's export target runs on this device (from its profile)."""
    target = find_target_for_file(model_path)
    if target is None:
        check_model_file(model_path)  # raises the unknown-file-type error
    return target.interpreter_on(profile)


def runner_args(profile: DeviceProfile, model: str, out: str, *, eval_npz: str | None, runs: int,
                warmup: int, interpreter: str) -> list[str]:
    """Arguments after ``runner.py``; paths are as the device sees them."""
    args = [model, "--runs", str(runs), "--warmup", str(warmup), "--threads", str(profile.threads),
            "--interpreter", interpreter, "--out", out]
    if eval_npz is not None:
        args += ["--eval", eval_npz]
    return args


def runner_failure(returncode: int, stderr: str, where: str) -> DeviceError:
    """One-line error for a runner that exited non-zero."""
    tagged = [ln for ln in stderr.splitlines() if ln.startswith(_runner_script.ERROR_TAG)]
    if returncode in _MISSING:
        problem, fix = _MISSING[returncode]
        detail = f" [{tagged[-1].split(' ', 2)[-1]}]" if tagged else ""
        return DeviceError(problem.format(where=where) + detail, fix)
    if tagged:
        message = tagged[-1].split(" ", 2)[-1]
        return DeviceError(f"benchmark runner failed on {where}: {message}", "check the model file and arguments")
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "no error output"
    return DeviceError(f"benchmark runner exited with code {returncode} on {where}: {last}",
                       "run it by hand there to see the full output")


def read_result(path: Path, where: str) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeviceError(f"no readable result from the runner on {where} ({e})", "run it by hand there") from None
    if result.get("schema_version") != _runner_script.SCHEMA_VERSION:
        raise DeviceError(f"runner result from {where} has schema_version {result.get('schema_version')!r}, "
                          f"expected {_runner_script.SCHEMA_VERSION}", "use the runner shipped with this edgeprune")
    return result


def annotate(result: dict, profile: DeviceProfile, model_path: Path) -> dict:
    """The runner's JSON plus which device ran it and the file's size on disk."""
    result.update(
        device=profile.name,
        device_kind=profile.kind,
        emulated=profile.emulated,
        cpu=profile.cpu,
        model_path=str(model_path),
        model_bytes=Path(model_path).stat().st_size,
    )
    return result


def batch_args(profile: DeviceProfile, models: list[str], out: str, runs: int, warmup: int, interpreter: str) -> list[str]:
    """The runner's arguments for several model files measured in one process."""
    args = runner_args(profile, models[0], out, eval_npz=None, runs=runs, warmup=warmup, interpreter=interpreter)
    return [*models, *args[1:]]


def unpack_batch(result: dict, n: int, where: str) -> list[dict]:
    """The per-file results of a batch run (a single file's result is itself)."""
    batch = result.get("batch") if n > 1 else [result]
    if not isinstance(batch, list) or len(batch) != n:
        raise DeviceError(f"the runner on {where} returned {len(batch or [])} results for {n} models",
                          "use the runner shipped with this edgeprune")
    return batch
