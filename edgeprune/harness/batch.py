"""Benchmark several model files in one runner process on a device (one Python start, one guest).

The per-layer profiler measures dozens of small isolated-op files; starting the emulated board
once per file would cost more than the measurements.  Results come back in the order of the files,
each the runner's usual dict (plus ``instructions_per_inference`` on emulated boards).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from edgeprune.errors import DeviceError
from edgeprune.harness.profiles import DeviceProfile
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, check_model_file, interpreter_for, read_result,
                                         runner_args, runner_failure)


def _args(profile: DeviceProfile, models: list[str], out: str, runs: int, warmup: int, interpreter: str) -> list[str]:
    args = runner_args(profile, models[0], out, eval_npz=None, runs=runs, warmup=warmup, interpreter=interpreter)
    return [*models, *args[1:]]


def _unpack(result: dict, n: int, where: str) -> list[dict]:
    batch = result.get("batch") if n > 1 else [result]
    if not isinstance(batch, list) or len(batch) != n:
        raise DeviceError(f"the runner on {where} returned {len(batch or [])} results for {n} models",
                          "use the runner shipped with this edgeprune")
    return batch


def _host(profile, paths, runs, warmup, timeout_s) -> list[dict]:
    where = f"device {profile.name} (this machine)"
    interpreter = interpreter_for(profile, paths[0])
    with tempfile.TemporaryDirectory(prefix="edgeprune-batch-") as tmp:
        out = Path(tmp) / "result.json"
        args = _args(profile, [str(p.resolve()) for p in paths], str(out), runs, warmup, interpreter)
        try:
            proc = subprocess.run([sys.executable, str(RUNNER_SCRIPT), *args], capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"batch benchmark on {where} took over {timeout_s:.0f} s", "measure fewer files at once") from None
        if proc.returncode != 0:
            raise runner_failure(proc.returncode, proc.stderr, where)
        return _unpack(read_result(out, where), len(paths), where)


def _qemu(profile, paths, runs, warmup, timeout_s) -> list[dict]:
    from edgeprune.harness.qemu import ensure_env, run_python
    from edgeprune.harness.qemu_runner import RESULT_NAME, _result_from, emulated_fields

    where = f"{profile.name} (qemu {profile.arch}, -cpu {profile.cpu})"
    interpreter = interpreter_for(profile, paths[0])
    env = ensure_env(profile.arch)
    args = _args(profile, [p.name for p in paths], RESULT_NAME, runs, warmup, interpreter)
    res = run_python(env, RUNNER_SCRIPT, args, cpu=profile.cpu, files=list(paths), timeout_s=timeout_s,
                     cache=profile.board.cache_arg() if profile.board else None)
    if res.returncode != 0:
        raise runner_failure(res.returncode, res.stderr, where)
    results = _unpack(_result_from(res, where), len(paths), where)
    counts = [int(c) for c in res.region_instructions]
    if len(counts) != runs * len(paths):
        raise DeviceError(f"instruction counter on {where} saw {len(counts)} marked regions for "
                          f"{runs} runs of {len(paths)} models", "rebuild the qemu env")
    for i, r in enumerate(results):
        part = slice(i * runs, (i + 1) * runs)
        r.update(cpu=res.cpu or profile.cpu,
                 **emulated_fields(profile, r, counts[part], res.region_mix[part], res.region_cache_misses[part]))
    return results


def run_batch(profile: DeviceProfile, model_paths: list[Path], *, runs: int, warmup: int, host: str | None = None,
              timeout_s: float = 3600) -> list[dict]:
    """One result dict per file, in order, measured in one runner process (SSH boards: one by one)."""
    paths = [check_model_file(Path(p)) for p in model_paths]
    if not paths:
        return []
    if len({p.name for p in paths}) != len(paths):
        raise DeviceError("two files of one batch share a name", "give every isolated file its own name")
    if profile.kind == "host":
        results = _host(profile, paths, runs, warmup, timeout_s)
    elif profile.kind == "qemu":
        results = _qemu(profile, paths, runs, warmup, timeout_s)
    elif profile.kind == "ssh":
        from edgeprune.harness import ssh_runner

        results = [ssh_runner.run(profile, p, runs=runs, warmup=warmup, host=host) for p in paths]
    else:
        raise DeviceError(f"device {profile.name}: unknown kind {profile.kind}", "use host, qemu or ssh")
    return [annotate(r, profile, p) for r, p in zip(results, paths)]
