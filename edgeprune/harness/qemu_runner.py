"""Run the benchmark in an emulated ARM Linux (qemu-user + a cached rootfs, see edgeprune.harness.qemu).

Emulated wall-clock latency says nothing about a real board.  What the emulator measures
deterministically, between the runner's markers (one region per timed inference), is the executed
instructions by shape and the data accesses through the board's caches; the profile's board model
turns those into the estimated board time (:mod:`edgeprune.harness.board_time`).  The emulator's
own wall-clock is kept as ``emulator_ms``, never as a latency.
"""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import DeviceError
from edgeprune.harness import qemu
from edgeprune.harness.board_time import estimate
from edgeprune.harness.qemu.arches import get_arch
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, check_model_file, interpreter_for,
                                         read_result, runner_args, runner_failure)

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

KIND = "qemu"
EMULATED = True
USES_HOST = False

EMULATION_NOTE = ("emulated with qemu-user: board_time_ms is estimated from the counted instruction mix and simulated "
                  "caches with the board's pipe model; emulator_ms is the emulator's own wall-clock, not board time; "
                  "peak RSS includes the emulator")
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
    res = qemu.run_python(env, RUNNER_SCRIPT, args, cpu=profile.cpu, files=files, timeout_s=timeout_s,
                          cache=profile.board.cache_arg() if profile.board else None)
    if res.returncode != 0:
        raise runner_failure(res.returncode, res.stderr, where)
    result = _result_from(res, where)
    counts = [int(c) for c in res.region_instructions]
    if len(counts) != runs:
        raise DeviceError(f"instruction counter on {where} saw {len(counts)} marked regions for {runs} runs",
                          "the qemu plugin and the runner's markers disagree; rebuild the qemu env")
    result = annotate(result, profile, model_path)
    result.update(
        cpu=res.cpu or profile.cpu,
        instructions_all_threads=[int(c) for c in res.region_instructions_all_threads],
        **emulated_fields(profile, result, counts, res.region_mix, res.region_cache_misses),
    )
    return result


def emulated_fields(profile: DeviceProfile, result: dict, counts: list[int], mixes: list[dict],
                    misses: list[list[int]]) -> dict:
    """What an emulated run reports for one model, from its regions (one per timed inference).

    Counts repeat exactly from the second region on; the last region is used for the mix and the
    caches, which are warm by then.  The runner's wall-clock becomes ``emulator_ms``."""
    fields = {"emulated": True, "instructions_per_inference": int(statistics.median(counts)),
              "instructions_all": counts, "note": EMULATION_NOTE,
              "emulator_ms": result.pop("latency_ms", None)}
    result.pop("latencies_ms", None)
    if profile.board is not None and mixes:
        est = estimate(mixes[-1], misses[-1] if misses else None, profile.board)
        # the raw measurement too, so an estimate can be redone when a core or board model changes
        fields.update(board_time_ms=est.ms, board_time=est.as_dict(profile.board), instruction_mix=mixes[-1],
                      cache_misses_per_level=misses[-1] if misses else None)
    return fields
