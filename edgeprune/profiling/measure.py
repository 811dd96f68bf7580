"""Measure what the cost table lacks: isolated files in batches, as trials through the executor.

A trial measures one batch of files in one runner process on the device (one guest start on an
emulated board) and returns ``{key: cost}``.  Emulated boards give the estimated board time of an
invoke (from its instruction mix and cache misses, which repeat exactly; instructions per invoke on
a profile without a board model).  Real devices give the p50 latency after
warm-up in each of a few rounds (separate processes), and the table keeps the lowest round: load
from other programs only ever adds time, so the quietest round is the closest to the op's own cost
(on a busy 2-core machine this kept parts-vs-whole within 3%, where the median of rounds drifted 12%).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from edgeprune.executor import get_executor
from edgeprune.harness import backends, batch
from edgeprune.harness.profiles import get_profile
from edgeprune.profiling.cost_table import EMPTY_KEY, CostTable
from edgeprune.profiling.tflite_ops import empty_model

QEMU_RUNS, QEMU_WARMUP = 3, 1
LATENCY_RUNS, LATENCY_WARMUP, LATENCY_ROUNDS = 200, 20, 7
BATCH_FILES = 400  # files per runner process (bounds one guest run's time)


def measure_trial(device: str, files: dict[str, str], host: str | None = None) -> dict:
    """Trial body: ``{key: path}`` → ``{key: {"cost": ...}}`` measured on `device`."""
    profile = get_profile(device)
    keys, paths = list(files), [Path(files[k]) for k in files]
    if backends.deterministic_cost(profile):  # an emulated board counts: a few runs repeat exactly
        res = batch.run_batch(profile, paths, runs=QEMU_RUNS, warmup=QEMU_WARMUP, host=host)
        field = "board_time_ms" if profile.board is not None else "instructions_per_inference"
        return {k: {"cost": float(r[field]), "instructions": r["instructions_per_inference"], "runs": QEMU_RUNS}
                for k, r in zip(keys, res)}
    rounds = [batch.run_batch(profile, paths, runs=LATENCY_RUNS, warmup=LATENCY_WARMUP, host=host)
              for _ in range(LATENCY_ROUNDS)]
    out = {}
    for i, k in enumerate(keys):
        p50s = [rnd[i]["latency_ms"]["p50"] for rnd in rounds]
        out[k] = {"cost": float(min(p50s)), "round_p50s": p50s, "runs": LATENCY_RUNS, "percentile": 50}
    return out


def measure_missing(table: CostTable, items: dict[str, bytes | Path], *, executor=None,
                    host: str | None = None) -> int:
    """Measure every key of `items` (bytes or a file) the table lacks, plus the empty model; returns how many."""
    wanted = dict(items)
    if EMPTY_KEY not in table:
        wanted[EMPTY_KEY] = empty_model()
    todo = table.missing(wanted)
    if not todo:
        return 0
    executor = executor or get_executor()
    with tempfile.TemporaryDirectory(prefix="edgeprune-cost-") as tmp:
        files = {}
        for i, key in enumerate(todo):
            src = wanted[key]
            path = Path(tmp) / f"u{i:05d}.tflite"
            path.write_bytes(src if isinstance(src, (bytes, bytearray)) else Path(src).read_bytes())
            files[key] = str(path)
        chunks = [dict(list(files.items())[i:i + BATCH_FILES]) for i in range(0, len(files), BATCH_FILES)]
        results = executor.map(measure_trial, [{"device": table.profile.name, "files": c, "host": host}
                                               for c in chunks])
    for r in results:
        table.add(r)
    return len(todo)


def net_cost(table: CostTable, key: str) -> float:
    """A unit's cost with the per-invoke overhead taken off (never below zero)."""
    return max(0.0, table.get(key) - table.get(EMPTY_KEY))
