"""The one cost metric per device that every ranking uses: which file to ship, Pareto stars,
plots, `precision: auto` and the bench summary.

Emulated boards with a board model (``board:`` in the profile) use the estimated board time: the
counted instruction mix and simulated caches through the board's pipe model
(:mod:`edgeprune.harness.board_time`); deterministic, and checked against published real-board
times.  An emulated profile without a board model falls back to instructions per inference.  The
emulator's own wall time is never a metric.  Real devices (host, SSH boards) use the measured p50
latency after warm-up.  A row that lacks its device's metric is not ranked.

Plain Python, below every package: the harness measures it, the report and the rankings read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceMetric:
    key: str     # where the number sits in a benchmark row / runner result
    label: str   # for tables, legends and "why" texts
    unit: str


# one sentence for legends and captions
RULE = "cost = estimated board time on emulated boards, measured p50 latency elsewhere"

BOARD_TIME = DeviceMetric("board_time_ms", "estimated board time", "ms")
INSTRUCTIONS = DeviceMetric("instructions_per_inference", "instructions per inference", "instructions")
LATENCY_P50 = DeviceMetric("latency_p50_ms", "p50 latency", "ms")


# the names cost tables and device-cost summaries give the metric, with the unit shown for them
TABLE_UNITS = {"board_ms": "est. board ms", "latency_ms": "p50 ms", "instructions": "instructions"}


def device_metric(emulated: bool, estimated: bool = True) -> DeviceMetric:
    """The metric that ranks files on a device: the estimated board time if it is emulated with a
    board model (`estimated`), instructions if emulated without one, else the measured p50 latency."""
    if not emulated:
        return LATENCY_P50
    return BOARD_TIME if estimated else INSTRUCTIONS


def row_metric(row: dict) -> DeviceMetric:
    """The metric of a benchmark/report row: emulated rows of a board model carry ``board_time_ms``."""
    return device_metric(bool(row.get("emulated")), row.get("board_time_ms") is not None)


def cost(row: dict, metric: DeviceMetric | None = None) -> float | None:
    """`row`'s cost on its device (a benchmark/report row or a runner result); None when not measured."""
    metric = metric or row_metric(row)
    if metric is BOARD_TIME:
        value = row.get("board_time_ms")
    elif metric is INSTRUCTIONS:
        value = row.get("instructions_per_inference")
    else:
        value = (row.get("latency_ms") or {}).get("p50")
    return None if value is None else float(value)


def ship_choice(rows: list[dict], max_drop: float) -> int | None:
    """Index into `rows` (one device's measured files) of the file to ship: the lowest cost among
    those whose test accuracy is within `max_drop` (a fraction: 0.005 = 0.5 points) of the most
    accurate; ties go to the more accurate. It is never dominated, so it is always on the
    cost-vs-accuracy Pareto front. None when no row has both numbers."""
    ranked = [i for i, r in enumerate(rows) if cost(r) is not None and r.get("test_accuracy") is not None]
    if not ranked:
        return None
    best = max(rows[i]["test_accuracy"] for i in ranked)
    within = [i for i in ranked if rows[i]["test_accuracy"] >= best - max_drop - 1e-12]
    return min(within, key=lambda i: (cost(rows[i]), -rows[i]["test_accuracy"]))
