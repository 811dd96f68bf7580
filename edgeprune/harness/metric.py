"""The one cost metric per device that every ranking uses: which file to ship, Pareto stars,
plots, `precision: auto` and the bench summary.

Emulated boards count guest instructions per inference (deterministic; the emulator's wall time
is not the board's time). Real devices (host, SSH boards) use the measured p50 latency after
warm-up. A row that lacks its device's metric is not ranked.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceMetric:
    key: str     # where the number sits in a benchmark row / runner result
    label: str   # for tables, legends and "why" texts
    unit: str


# one sentence for legends and captions
RULE = "cost = instructions per inference on emulated boards, p50 latency elsewhere"

INSTRUCTIONS = DeviceMetric("instructions_per_inference", "instructions per inference", "instructions")
LATENCY_P50 = DeviceMetric("latency_p50_ms", "p50 latency", "ms")


def device_metric(emulated: bool) -> DeviceMetric:
    """The metric that ranks files on a device: instructions if it is emulated, else p50 latency."""
    return INSTRUCTIONS if emulated else LATENCY_P50


def cost(row: dict, metric: DeviceMetric | None = None) -> float | None:
    """`row`'s cost on its device (a benchmark/report row or a runner result); None when not measured."""
    metric = metric or device_metric(bool(row.get("emulated")))
    if metric is INSTRUCTIONS:
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
