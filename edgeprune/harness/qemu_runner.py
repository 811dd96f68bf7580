"""Run the benchmark in an emulated ARM Linux (qemu-user + a cached rootfs, see edgeprune.harness.qemu).

Emulated wall-clock latency says little about a real board; the deterministic number is the
count of guest instructions between the runner's markers, one region per timed inference.
"""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import DeviceError
from edgeprune.harness import qemu
from edgeprune.harness.qemu.arches import get_arch
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, check_model_file, interpreter_for,
                                         read_result, runner_args, runner_failure)

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

KIND = "qemu"
EMULATED = True
USES_HOST = False

EMULATION_NOTE = ("emulated with qemu-user: latency is emulator time, not board latency, and peak RSS includes the "
                  "emulator; instructions_per_inference is repeatable but is not time (no cache or pipeline model)")
RESULT_NAME = "result.json"


def check(profile: DeviceProfile, host: str | None = None) -> None:
    """The board's architecture is one edgeprune can emulate (it is built on first use)."""
    get_arch(profile.arch)


def ready(profile: DeviceProfile) -> None:
    """The emulated board is built (building it takes minutes and root)."""
    qemu.ensure_env(profile.arch, build=False)


def _result_from(res, where: str) -> dict:
    """The runner's JSON, which run_python copied back from the guest work dir."""
    path = res.files.get(RESULT_NAME)
    if path is None:
        raise DeviceError(f"the runner on {where} left no {RESULT_NAME}", "run it by hand under qemu to see why")
    try:
        return read_result(Path(path), where)
    finally:
        shutil.rmtree(Path(path).parent, ignore_errors=True)  # run_python's copy-back folder


def run(profile: DeviceProfile, model_path: Path, *, eval_npz: Path | None = None, runs: int = 50,
        warmup: int = 5, host: str | None = None, timeout_s: float = 3600) -> dict:
    model_path = check_model_file(Path(model_path))
    interpreter = interpreter_for(profile, model_path)  # before a possibly long rootfs build
    where = f"{profile.name} (qemu {profile.arch}, -cpu {profile.cpu})"
    env = qemu.ensure_env(profile.arch)
    files = [model_path] + ([Path(eval_npz)] if eval_npz else [])
    # Files are passed by basename: run_python copies them into the guest's working dir.
    args = runner_args(profile, model_path.name, RESULT_NAME, eval_npz=Path(eval_npz).name if eval_npz else None,
                       runs=runs, warmup=warmup, interpreter=interpreter)
    res = qemu.run_python(env, RUNNER_SCRIPT, args, cpu=profile.cpu, files=files, timeout_s=timeout_s)
    if res.returncode != 0:
        raise runner_failure(res.returncode, res.stderr, where)
    result = _result_from(res, where)
    counts = [int(c) for c in res.region_instructions]
    if len(counts) != runs:
        raise DeviceError(f"instruction counter on {where} saw {len(counts)} marked regions for {runs} runs",
                          "the qemu plugin and the runner's markers disagree; rebuild the qemu env")
    result = annotate(result, profile, model_path)
    result.update(
        emulated=True,
        cpu=res.cpu or profile.cpu,
        instructions_per_inference=int(statistics.median(counts)),
        instructions_all=counts,
        instructions_all_threads=[int(c) for c in res.region_instructions_all_threads],
        note=EMULATION_NOTE,
    )
    return result
