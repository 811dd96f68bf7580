"""Where a .tflite file's cost goes on a device: every op isolated, measured, checked against the whole.

The check: the per-invoke overhead (an empty model) plus every op's net cost must come within
``TOLERANCE`` of the whole model measured as one file; the result says how close it came.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.harness.profiles import DeviceProfile, get_profile
from edgeprune.profiling.cost_table import EMPTY_KEY, CostTable
from edgeprune.profiling.measure import measure_missing, net_cost
from edgeprune.profiling.tflite_ops import (NUMPY_TYPES, isolate, op_units, read_model, tensor_name,
                                            unit_signature)

TOLERANCE = 0.05
PROFILE_SCHEMA_VERSION = 1


def model_key(data: bytes) -> str:
    return "model:" + hashlib.sha256(data).hexdigest()[:20]


def unit_label(names: list[str], op: str, layer_names: list[str] | None = None) -> str:
    """The Keras layer an op came from, read from its tensor names (``model/layer/Op;...``).

    With the model's layer names (in model order), a fused op (conv + BatchNorm + ReLU) is named
    after the first of its layers, the conv; without them, after the first name in its output.
    """
    rank = {n: i for i, n in enumerate(layer_names)} if layer_names is not None else None
    for name in names:
        comps = [c for part in name.split(";") for c in part.split("/")[1:2 if rank is None else None]]
        if rank is not None:
            hits = [c for c in comps if c in rank]
            if hits:
                return min(hits, key=rank.get)
        elif comps and len(name.split(";")[0].split("/")) >= 3:
            return comps[0]
    return op.lower()


def _shape_text(model, tensors) -> str:
    sg = model.subgraphs[0]
    out = []
    for t in tensors:
        tensor = sg.tensors[t]
        dtype = NUMPY_TYPES.get(int(tensor.type))
        out.append(f"{'x'.join(str(int(d)) for d in tensor.shape)} {dtype.__name__ if dtype else tensor.type}")
    return ", ".join(out)


def profile_tflite(source, device: str | DeviceProfile, *, layer_names=None, executor=None,
                   host: str | None = None, table: CostTable | None = None) -> dict:
    """Per-op cost of one .tflite (path or bytes) on `device`, with the parts-vs-whole check.

    Returns ``{"device", "metric", "overhead", "whole", "parts_sum", "parts_over_whole", "within_tolerance",
    "measured_now", "ops": [{index, op, layer, signature, cost, share, inputs, outputs}]}``.
    """
    profile = device if isinstance(device, DeviceProfile) else get_profile(device)
    if profile.interpreter.tflite is None:
        raise EdgepruneError(f"device {profile.name} has no TFLite interpreter", "profile on another device")
    data = Path(source).read_bytes() if not isinstance(source, (bytes, bytearray)) else bytes(source)
    model = read_model(data)
    units = op_units(model)
    table = table or CostTable(profile)
    sigs = [unit_signature(model, u) for u in units]
    whole_key = model_key(data)
    missing = set(table.missing([whole_key, *sigs]))
    items = {sig: isolate(model, u) for sig, u in zip(sigs, units) if sig in missing}
    if whole_key in missing:
        items[whole_key] = data
    measured = measure_missing(table, items, executor=executor, host=host)
    names = list(layer_names) if layer_names is not None else None
    overhead, whole = table.get(EMPTY_KEY), table.get(whole_key)
    rows = []
    for u, sig in zip(units, sigs):
        cost = net_cost(table, sig)
        rows.append({"index": u.index, "op": u.op, "layer": unit_label(u.names, u.op, names), "signature": sig,
                     "cost": cost, "share": cost / whole if whole else None,
                     "inputs": _shape_text(model, u.inputs), "outputs": _shape_text(model, u.outputs),
                     "name": tensor_name(model.subgraphs[0].tensors[u.outputs[0]]) if u.outputs else ""})
    parts = overhead + sum(r["cost"] for r in rows)
    ratio = parts / whole if whole else None
    return {"schema_version": PROFILE_SCHEMA_VERSION, "device": profile.name, "cpu": profile.cpu,
            "kind": profile.kind, "metric": table.metric, "runtime": table.key["runtime"],
            "file_bytes": len(data), "overhead": overhead, "whole": whole, "parts_sum": parts,
            "parts_over_whole": ratio, "tolerance": TOLERANCE,
            "within_tolerance": ratio is not None and abs(ratio - 1.0) <= TOLERANCE,
            "measured_now": measured, "cost_table": str(table.path), "ops": rows}


def by_layer(result: dict) -> list[dict]:
    """The op rows summed per layer label, in first-seen order (what a per-layer table shows)."""
    out: dict[str, dict] = {}
    for r in result["ops"]:
        row = out.setdefault(r["layer"], {"layer": r["layer"], "ops": [], "cost": 0.0})
        row["ops"].append(r["op"])
        row["cost"] += r["cost"]
    whole = result.get("whole") or 0
    for row in out.values():
        row["share"] = row["cost"] / whole if whole else None
    return list(out.values())
