"""Benchmark several model files in one runner process on a device (one Python start, one guest).

The per-layer profiler measures dozens of small isolated-op files; starting the emulated board
once per file would cost more than the measurements.  Results come back in the order of the files,
each the runner's usual dict (plus ``instructions_per_inference`` on emulated boards).  How a kind runs
a batch is its backend's ``run_batch`` (:mod:`edgeprune.harness.backends`).
"""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import DeviceError
from edgeprune.harness.backends import backend_for
from edgeprune.harness.profiles import DeviceProfile
from edgeprune.harness.runner_io import annotate, check_model_file


def run_batch(profile: DeviceProfile, model_paths: list[Path], *, runs: int, warmup: int, host: str | None = None,
              timeout_s: float = 3600) -> list[dict]:
    """One result dict per file, in order, measured in one runner process (SSH boards: one by one)."""
    paths = [check_model_file(Path(p)) for p in model_paths]
    if not paths:
        return []
    if len({p.name for p in paths}) != len(paths):
        raise DeviceError("two files of one batch share a name", "give every isolated file its own name")
    results = backend_for(profile).run_batch(profile, paths, runs=runs, warmup=warmup, host=host, timeout_s=timeout_s)
    return [annotate(r, profile, p) for r, p in zip(results, paths)]
