"""Which layers a mixed-precision file keeps float on a device, decided from measured cost.

(Moved from ``edgeprune.export.precision``: choosing per device measures on the device, above export.)

The decision is a function of a per-layer cost table, ``{layer: float cost − int8 cost}`` on the
device, in that device's metric (:mod:`edgeprune.device_metric`): a layer stays float when float
saves at least `MIN_SAVING` of the int8 model's cost. The table comes from
:func:`edgeprune.profiling.layer_costs` (each layer isolated with its real shapes and precision,
measured on the device, cached per device in the cost table). What isolation cannot see, the
QUANTIZE / DEQUANTIZE at a float layer's edges, is settled by measuring the mixed file whole:
the benchmark step measures it on each device, and `precision: auto` keeps it only where it is
the cheapest file within the accuracy budget.
"""
from __future__ import annotations

from edgeprune.profiling.api import layer_costs
from edgeprune.quantize.selective import compute_layers

MIN_SAVING = 0.01  # a layer stays float when that saves ≥ 1% of the int8 model's cost


def choose_keep_float(deltas: dict[str, float], int8_cost: float, min_saving: float = MIN_SAVING) -> list[str]:
    """Layers whose float version is cheaper than int8 by at least `min_saving` of `int8_cost`, most saving first."""
    keep = [layer for layer, delta in deltas.items() if delta <= -min_saving * int8_cost]
    return sorted(keep, key=lambda layer: deltas[layer])


def layer_deltas(model, device: str, calibration, *, executor=None) -> dict:
    """The per-layer cost table on `device`: ``{"metric", "int8_cost", "float_cost", "deltas": {layer: float − int8}}``
    for every conv / dense layer of `model` (costs from the profiler's isolated layers)."""
    costs = layer_costs(model, device, ("float32", "int8"), calibration=calibration, executor=executor)
    flt, q8 = costs["float32"], costs["int8"]
    deltas = {layer: flt["layers"][layer] - q8["layers"][layer] for layer in compute_layers(model)
              if layer in flt["layers"] and layer in q8["layers"]}
    return {"metric": q8["metric"], "int8_cost": q8["whole"], "float_cost": flt["whole"], "deltas": deltas}


def plan_mixed(model, devices: list[str], calibration, *, executor=None, log=print) -> list[dict]:
    """One entry per distinct choice: ``{"keep_float", "devices", "tables": {device: table}}``.

    Devices whose choice keeps nothing float (int8 is cheaper everywhere) or everything (that is
    the float32 file) get no mixed file.
    """
    candidates = compute_layers(model)
    plans: dict[tuple, dict] = {}
    for device in devices:
        table = layer_deltas(model, device, calibration, executor=executor)
        keep = choose_keep_float(table["deltas"], table["int8_cost"])
        fmt = "{:+,.0f}" if table["metric"] == "instructions" else "{:+.4f}"
        shown = ", ".join(f"{k} {fmt.format(v)}" for k, v in table["deltas"].items())
        log(f"      {device}: float − int8 per layer ({table['metric']}): {shown} → keep float: {keep or 'none'}")
        if not keep or len(keep) == len(candidates):
            continue
        entry = plans.setdefault(tuple(sorted(keep)), {"keep_float": keep, "devices": [], "tables": {}})
        entry["devices"].append(device)
        entry["tables"][device] = table
    return list(plans.values())
