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
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeprune.errors import DeviceError
from edgeprune.harness import qemu
from edgeprune.harness.board_time import estimate
from edgeprune.harness.qemu.arches import get_arch
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, batch_args, check_model_file, interpreter_for,
                                         read_result, runner_args, runner_failure, unpack_batch)

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

KIND = "qemu"
EMULATED = True
USES_HOST = False

EMULATION_NOTE = ("emulated with qemu-user: board_time_ms is estimated from the counted instruction mix and simulated "
                  "caches with the board's pipe model; emulator_ms is the emulator's own wall-clock, not board time; "
                  "peak RSS includes the emulator")
RESULT_NAME = "result.json"
EVAL_NAME = "eval.npz"
# What the guest runs, whatever was asked: counts repeat exactly, so more runs add only emulation time,
# and a fixed schedule makes the count a fact about the file.  20 warm-up runs let Python's
# specialising interpreter settle on the timed loop (a tiny model's count drifts ~6% over them);
# past LARGE_FILE_BYTES that drift is far below 0.1% of an inference, and each emulated inference
# costs seconds, so one warm-up run and one timed run.
EMULATED_WARMUP, EMULATED_RUNS = 20, 3
LARGE_FILE_BYTES = 2_000_000
LARGE_WARMUP, LARGE_RUNS = 1, 1


def emulated_schedule(model_path: Path) -> tuple[int, int]:
    """(warm-up runs, timed runs) the guest does for this file."""
    if Path(model_path).stat().st_size > LARGE_FILE_BYTES:
        return LARGE_WARMUP, LARGE_RUNS
    return EMULATED_WARMUP, EMULATED_RUNS


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
    warmup, runs = emulated_schedule(model_path)  # not the asked ones: see EMULATED_WARMUP
    with tempfile.TemporaryDirectory(prefix="edgeprune-qemu-stage-") as stage:
        # The count is a fact about the file: the guest sees the same names and argv from every command.
        files, args = canonical_guest_args(profile, model_path, eval_npz, Path(stage), runs=runs, warmup=warmup,
                                           interpreter=interpreter)
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
    result["model"] = model_path.name  # not the staged name
    result.update(
        cpu=res.cpu or profile.cpu,
        instructions_all_threads=[int(c) for c in res.region_instructions_all_threads],
        **emulated_fields(profile, result, counts, res.region_mix, res.region_cache_misses),
    )
    return result


def canonical_guest_args(profile: DeviceProfile, model_path: Path, eval_npz: Path | None, stage: Path, *,
                         runs: int, warmup: int, interpreter: str) -> tuple[list[Path], list[str]]:
    """(files to copy, runner argv) that depend only on the model's format and the device.

    What an emulated inference executes depends on the Python process before it, so the names,
    the argv and the schedule are fixed: the model is staged as ``model.<format>``, the eval data
    always as ``eval.npz`` (with no rows when there is none: the runner then scores nothing), the
    warm-up and runs come from :func:`emulated_schedule`, and ``--runs`` is written with a fixed width.
    The runner scores eval data only after the timed runs, so its size does not matter either."""
    model = stage / f"model{model_path.suffix.lower()}"
    shutil.copyfile(model_path, model)
    data = stage / EVAL_NAME
    if eval_npz is not None:
        shutil.copyfile(eval_npz, data)
    else:
        np.savez(data, x=np.zeros((0,), np.float32), y=np.zeros((0,), np.int64))
    args = runner_args(profile, model.name, RESULT_NAME, eval_npz=data.name, runs=runs, warmup=warmup,
                       interpreter=interpreter)
    # Fixed width: argv's length moves the guest's initial stack, and with it alignment-dependent code paths.
    args[args.index("--runs") + 1] = f"{runs:09d}"
    return [model, data], args


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


def runtime_version(profile: DeviceProfile) -> str:
    """The guest's pinned interpreter packages."""
    return ",".join(get_arch(profile.arch).pip_requirements)


def run_batch(profile: DeviceProfile, paths: list[Path], *, runs: int, warmup: int, host: str | None = None,
              timeout_s: float = 3600) -> list[dict]:
    """Several files measured in one guest run (one emulator start), each with its counted instructions."""
    where = f"{profile.name} (qemu {profile.arch}, -cpu {profile.cpu})"
    interpreter = interpreter_for(profile, paths[0])
    env = qemu.ensure_env(profile.arch)
    args = batch_args(profile, [p.name for p in paths], RESULT_NAME, runs, warmup, interpreter)
    res = qemu.run_python(env, RUNNER_SCRIPT, args, cpu=profile.cpu, files=list(paths), timeout_s=timeout_s,
                          cache=profile.board.cache_arg() if profile.board else None)
    if res.returncode != 0:
        raise runner_failure(res.returncode, res.stderr, where)
    results = unpack_batch(_result_from(res, where), len(paths), where)
    counts = [int(c) for c in res.region_instructions]
    if len(counts) != runs * len(paths):
        raise DeviceError(f"instruction counter on {where} saw {len(counts)} marked regions for "
                          f"{runs} runs of {len(paths)} models", "rebuild the qemu env")
    for i, r in enumerate(results):
        part = slice(i * runs, (i + 1) * runs)
        r.update(cpu=res.cpu or profile.cpu,
                 **emulated_fields(profile, r, counts[part], res.region_mix[part], res.region_cache_misses[part]))
    return results
