"""Which layers a mixed-precision file keeps float on a device, decided from measured cost.

The decision is a function of a per-layer cost table, ``{layer: float cost − int8 cost}`` on the
device, in that device's metric (:mod:`edgeprune.harness.metric`): a layer stays float when float
saves at least `MIN_SAVING` of the int8 file's cost. The table comes from
:func:`measure_layer_deltas`, which measures in context: the int8 file, and one mixed file per
conv / dense layer with only that layer float, each whole on the device (the difference then
includes the QUANTIZE / DEQUANTIZE at that layer's edges). An isolated per-layer profile gives
the same table shape and can be passed to :func:`choose_keep_float` instead. The combined file
is measured again on the device by the benchmark step, and `precision: auto` keeps it only if
it is the cheapest within the accuracy budget.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from edgeprune.executor import get_executor
from edgeprune.export.tflite import export_tflite
from edgeprune.harness.backends import run_on_device
from edgeprune.harness.metric import cost, device_metric
from edgeprune.harness.profiles import get_profile
from edgeprune.quantize.selective import compute_layers

MIN_SAVING = 0.01  # a layer stays float when that saves ≥ 1% of the int8 file's cost
# (runs, warm-up) per file: instructions repeat exactly under emulation, latency needs many timed runs
EMULATED_RUNS, TIMED_RUNS = (3, 1), (200, 20)


def choose_keep_float(deltas: dict[str, float], int8_cost: float, min_saving: float = MIN_SAVING) -> list[str]:
    """Layers whose float version is cheaper than int8 by at least `min_saving` of `int8_cost`, most saving first."""
    keep = [layer for layer, delta in deltas.items() if delta <= -min_saving * int8_cost]
    return sorted(keep, key=lambda layer: deltas[layer])


def measure_file_trial(device: str, path: str) -> dict:
    """Executor trial: one exported file measured whole on `device`; ``{"cost", "metric"}``."""
    profile = get_profile(device)
    runs, warmup = EMULATED_RUNS if profile.emulated else TIMED_RUNS
    result = run_on_device(profile, Path(path), eval_npz=None, runs=runs, warmup=warmup)
    metric = device_metric(profile.emulated)
    return {"cost": cost(result, metric), "metric": metric.key}


def measure_layer_deltas(model, device: str, calibration, candidates: list[str], *, executor=None,
                         work_dir: Path | None = None) -> dict:
    """Per-layer cost table on `device`, measured in context (see the module docstring).

    Returns ``{"metric", "int8_cost", "deltas": {layer: float-only-this-layer cost − int8 cost}}``.
    """
    executor = executor or get_executor()
    with tempfile.TemporaryDirectory(prefix="edgeprune-mixed-", dir=work_dir) as tmp:
        files = {"": export_tflite(model, Path(tmp) / "int8.tflite", quant="int8", calibration=calibration)}
        for i, layer in enumerate(candidates):
            files[layer] = export_tflite(model, Path(tmp) / f"float-{i:03d}.tflite", quant="mixed",
                                         calibration=calibration, keep_float=[layer])
        results = executor.map(measure_file_trial, [{"device": device, "path": str(p)} for p in files.values()])
    costs = dict(zip(files, (r["cost"] for r in results)))
    int8_cost = costs.pop("")
    return {"metric": results[0]["metric"], "int8_cost": int8_cost,
            "deltas": {layer: c - int8_cost for layer, c in costs.items()}}


def plan_mixed(model, devices: list[str], calibration, *, executor=None, log=print) -> list[dict]:
    """One entry per distinct choice: ``{"keep_float", "devices", "tables": {device: table}}``.

    Devices whose choice keeps nothing float (int8 is cheaper everywhere) or everything (that is
    the float32 file) get no mixed file.
    """
    candidates = compute_layers(model)
    plans: dict[tuple, dict] = {}
    for device in devices:
        table = measure_layer_deltas(model, device, calibration, candidates, executor=executor)
        keep = choose_keep_float(table["deltas"], table["int8_cost"])
        fmt = "{:+,.0f}" if table["metric"] == "instructions_per_inference" else "{:+.4f}"
        shown = ", ".join(f"{k} {fmt.format(v)}" for k, v in table["deltas"].items())
        log(f"      {device}: float − int8 per layer ({table['metric']}): {shown} → keep float: {keep or 'none'}")
        if not keep or len(keep) == len(candidates):
            continue
        entry = plans.setdefault(tuple(sorted(keep)), {"keep_float": keep, "devices": [], "tables": {}})
        entry["devices"].append(device)
        entry["tables"][device] = table
    return list(plans.values())
