"""Per-layer cost of the compared files on one device, before (float32, PTQ int8) and after (shipped).

Measured by edgeprune's profiler (:mod:`edgeprune.profiling`: every op isolated with its real
shapes and precision, looked up in the per-device cost table, the parts checked against the whole).
"""
from __future__ import annotations

import json
from pathlib import Path

from edgeprune.profiling.profile import by_layer, profile_tflite


def layer_label(label: str) -> str:
    """The Keras layer an op row belongs to (QAT wraps a layer as ``quant_<name>``)."""
    return label.removeprefix("quant_")


def layer_cost_trial(files: dict[str, str], device: str, out: str) -> str:
    """`{variant: .tflite path}` profiled on `device`; writes `{variant: {whole, overhead, parts_over_whole,
    metric, layers: {layer: cost}}}` to `out` and returns its path."""
    result = {}
    for variant, path in files.items():
        p = profile_tflite(Path(path), device)
        layers: dict[str, float] = {}
        for row in by_layer(p):
            name = layer_label(row["layer"])
            layers[name] = layers.get(name, 0.0) + row["cost"]
        result[variant] = {"metric": p["metric"], "whole": p["whole"], "overhead": p["overhead"],
                           "parts_over_whole": p["parts_over_whole"], "within_tolerance": p["within_tolerance"],
                           "layers": layers}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "files": files, "profiles": result}, indent=1))
    return str(out)
