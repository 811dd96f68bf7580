"""Public entry points: per-layer cost of a Keras model (or .tflite file) on a device, per precision."""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export.tflite import convert_tflite
from edgeprune.profiling.profile import by_layer, profile_tflite

# precision name → the TFLite converter mode of edgeprune.export.tflite
PRECISIONS = {"float32": "none", "float16": "fp16", "int8": "int8", "mixed": "mixed"}
ALIASES = {"none": "float32", "float": "float32", "fp32": "float32", "fp16": "float16"}


def precision_name(p: str) -> str:
    name = ALIASES.get(p, p)
    if name not in PRECISIONS:
        raise EdgepruneError(f"unknown precision '{p}'", f"use one of {', '.join(PRECISIONS)}")
    return name


def export_bytes(model, precision: str, calibration=None, keep_float=()) -> bytes:
    """The .tflite bytes of a Keras model at `precision` (int8, mixed: calibrated on `calibration` samples;
    mixed: int8 with the `keep_float` layers float)."""
    precision = precision_name(precision)
    if precision in ("int8", "mixed") and calibration is None:
        raise EdgepruneError(f"a {precision} profile needs calibration samples",
                             "pass --data (the dataset the model was trained on) or calibration=")
    quantized = precision in ("int8", "mixed")
    return convert_tflite(model, quant=PRECISIONS[precision], calibration=calibration if quantized else None,
                          keep_float=tuple(keep_float) if precision == "mixed" else ())


def profile_model(model, device: str, precision: str = "float32", *, calibration=None, executor=None,
                  host: str | None = None, keep_float=()) -> dict:
    """:func:`edgeprune.profiling.profile.profile_tflite` of a Keras model exported at `precision`."""
    precision = precision_name(precision)
    data = export_bytes(model, precision, calibration, keep_float)
    result = profile_tflite(data, device, layer_names=[l.name for l in model.layers], executor=executor, host=host)
    return {**result, "precision": precision}


def layer_costs(model, device: str, precisions=("float32", "int8"), *, calibration=None, executor=None,
                host: str | None = None) -> dict:
    """Per-layer cost of `model` on `device` for each precision (measured once, then from the cost table).

    model: a Keras model, or a path to a .tflite file (then `precisions` must name the file's one precision).
    Returns ``{precision: {"metric": "board_ms"|"latency_ms"|"instructions", "whole": float, "overhead": float,
    "parts_over_whole": float, "layers": {layer name: cost}, "ops": [per-op rows]}}``; a layer's cost
    is the net cost of the ops it became (a conv with its fused BatchNorm and activation).
    """
    out = {}
    for p in precisions:
        if isinstance(model, (str, Path)):
            result = {**profile_tflite(Path(model), device, executor=executor, host=host), "precision": p}
        else:
            result = profile_model(model, device, p, calibration=calibration, executor=executor, host=host)
        out[precision_name(p)] = {"metric": result["metric"], "whole": result["whole"], "overhead": result["overhead"],
                                  "parts_over_whole": result["parts_over_whole"],
                                  "layers": {r["layer"]: r["cost"] for r in by_layer(result)}, "ops": result["ops"]}
    return out
