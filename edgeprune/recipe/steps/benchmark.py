"""benchmark: run every exported file on each device (host, emulated boards, SSH boards) and record
its measured time, accuracy and memory; after ``precision: auto`` it marks per device the file kept."""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from edgeprune import progress
from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.harness.backends import backend_for, run_on_device
from edgeprune.harness.bench import result_line, write_eval_npz
from edgeprune.device_metric import ship_choice
from edgeprune.harness.profiles import get_profile
from edgeprune.recipe.steps.base import EXPORTS, Settings, StepType
from edgeprune.rundir import BenchmarkRow, SkippedDevice, StepResult


class BenchmarkStep(Settings):
    devices: list[str] = ["host"]
    runs: int = Field(50, ge=1, le=100000)
    warmup: int = Field(5, ge=0)
    eval_samples: int = Field(1000, ge=0, description="test images scored on the device (0: latency only)")
    emulated_runs: int = Field(10, ge=1, description="unused on emulated boards with the counting plugin: they run one "
                               "fixed schedule (their counts repeat exactly); kept for other emulated kinds")
    emulated_eval_samples: int = Field(200, ge=0)
    skip_unavailable: bool = Field(True, description="skip emulated devices whose emulator is not installed (said in the report)")


class BenchmarkResult(StepResult):
    kind: Literal["benchmark"] = "benchmark"
    benchmarks: list[BenchmarkRow]
    skipped_devices: list[SkippedDevice] = []
    RECORDED: ClassVar = ("skipped_devices",)

    def merge(self, ctx) -> None:
        ctx.metrics["benchmarks"] = [b.model_dump(mode="json") for b in self.benchmarks]
        ctx.metrics["skipped_devices"] = [d.model_dump(mode="json") for d in self.skipped_devices]

    def artifacts(self) -> list[str]:
        return [b.raw for b in self.benchmarks]


def run(ctx, spec: BenchmarkStep) -> dict:
    exports = ctx.metrics.get("exports") or []
    if not exports:
        raise EdgepruneError("benchmark step has nothing to measure", "put an export step before it")
    devices = ctx.devices or spec.devices
    profiles = [get_profile(d) for d in devices]
    ds = ctx.dataset
    rows, skipped = [], []
    (ctx.run_dir / "bench").mkdir(exist_ok=True)
    shown = progress.open_task("benchmark", total=len(profiles) * len(exports))
    for profile in profiles:
        emulated = profile.emulated
        n_eval = spec.emulated_eval_samples if emulated else spec.eval_samples
        runs = spec.emulated_runs if emulated else spec.runs
        eval_npz = write_eval_npz(ds.x_test[:n_eval], ds.y_test[:n_eval], ctx.run_dir / "bench" / f"eval-{n_eval}.npz") if n_eval else None
        try:
            backend_for(profile).ready(profile)
        except DeviceError as e:
            if not spec.skip_unavailable:
                raise
            skipped.append({"device": profile.name, "reason": str(e)})
            ctx.log(f"      skipped {profile.name}: {e}")
            shown.update(advance=len(exports))
            continue
        for exp in exports:
            if exp.get("devices") is not None and profile.name not in exp["devices"]:
                continue  # a mixed file chosen for other devices
            raw = run_on_device(profile, ctx.path(exp["path"]), eval_npz=eval_npz, runs=runs, warmup=spec.warmup)
            raw_rel = f"bench/{Path(exp['path']).name}@{profile.name}.json"
            ctx.path(raw_rel).write_text(json.dumps(raw, indent=1))
            lat = raw.get("latency_ms", {})
            row = {
                "export": exp["path"], "stage": exp["stage"], "format": exp["format"], "quant": exp["quant"],
                "device": profile.name, "emulated": bool(raw.get("emulated", emulated)), "cpu": raw.get("cpu") or profile.cpu,
                "arch": profile.arch, "stands_for": profile.stands_for,
                "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean")},
                "init_ms": raw.get("init_ms"), "first_inference_ms": raw.get("first_inference_ms"),
                "peak_rss_bytes": raw.get("peak_rss_bytes"), "accuracy": raw.get("accuracy"),
                "eval_samples": n_eval, "runs": raw.get("runs", runs),
                "instructions_per_inference": raw.get("instructions_per_inference"), "raw": raw_rel,
                "board_time_ms": raw.get("board_time_ms"), "board_time": raw.get("board_time"),
                "emulator_ms": raw.get("emulator_ms"),
            }
            rows.append(row)
            shown.report(result_line(raw), advance=1)
    progress.close_task(shown)
    _mark_shipped(ctx, rows)
    return {"kind": "benchmark", "benchmarks": rows, "skipped_devices": skipped}


def _mark_shipped(ctx, rows: list[dict]) -> None:
    """After precision: auto, flag per device the file it keeps (the report recommends the same one)."""
    precision = ctx.metrics.get("precision") or {}
    if precision.get("mode") != "auto":
        return
    accuracy = {e["path"]: e.get("accuracy") for e in ctx.metrics.get("exports") or []}
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device and r["stage"] in precision["stages"]]
        pick = ship_choice([{**r, "test_accuracy": accuracy.get(r["export"])} for r in mine],
                           precision["max_accuracy_drop"] / 100)
        if pick is not None:
            mine[pick]["shipped"] = True
            ctx.log(f"      {device}: precision auto keeps {mine[pick]['export']}")


STEP = StepType("benchmark", BenchmarkStep, BenchmarkResult, run, reads=lambda spec: (EXPORTS,),
                writes=lambda spec: ("benchmarks",), device_keys=("devices",),
                cache_extra=lambda spec, specs, devices: devices)
