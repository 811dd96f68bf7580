"""``edgeprune profile``: where a model's cost goes on a device, layer by layer."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgeprune.data import load_dataset
from edgeprune.device_metric import TABLE_UNITS
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.profiling.api import precision_name, profile_model
from edgeprune.profiling.profile import by_layer, profile_tflite


def profile_cmd(
    model: Annotated[Path, typer.Argument(help="A .tflite file, or a Keras model (.keras/.h5) exported per --precision.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile name (see `edgeprune devices`).")] = "host",
    precision: Annotated[Optional[List[str]], typer.Option(help="float32, float16 or int8 (repeatable; Keras models only).")] = None,
    data: Annotated[Optional[str], typer.Option(help="Dataset for int8 calibration (Keras models). A :raw or :symmetric suffix (e.g. my.npz:raw) changes how uint8 pixels are scaled (default :unit, pixel/255 in [0, 1]); float data are used as stored.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full profile (every op) as JSON.")] = None,
    executor: Annotated[str, typer.Option(help="inprocess or ray: where the measurement trials run.")] = "inprocess",
    host: Annotated[Optional[str], typer.Option(help="SSH boards: user@host (overrides the profile).")] = None,
) -> None:
    """Cost of every layer on a device: estimated board time on emulated boards, p50 latency elsewhere (cached per op)."""
    ex = get_executor(executor)
    results = []
    if model.suffix == ".tflite":
        if precision:
            raise EdgepruneError("--precision applies to Keras models; a .tflite file has its own",
                                 "drop --precision, or pass the .keras model")
        if not model.is_file():
            raise EdgepruneError(f"model file not found: {model}", "check the path")
        results.append({**profile_tflite(model, device, executor=ex, host=host), "precision": "as exported",
                        "model": str(model)})
    else:
        # modelio loads TensorFlow: only for a Keras model, after the options are checked (the CLI imports this module)
        from edgeprune.modelio import read_model

        keras_model = read_model(model).model
        precisions = [precision_name(p) for p in (precision or ["float32"])]
        calibration = None
        if "int8" in precisions:
            if not data:
                raise EdgepruneError("an int8 profile needs calibration data", "pass --data (e.g. --data mnist)")
            calibration = load_dataset(data).calibration_samples(200)
        for p in precisions:
            results.append({**profile_model(keras_model, device, p, calibration=calibration, executor=ex, host=host),
                            "model": str(model)})
    for r in results:
        print_profile(r)
    if json_out:
        json_out.write_text(json.dumps(results if len(results) > 1 else results[0], indent=1))


def print_profile(result: dict) -> None:
    unit = TABLE_UNITS.get(result["metric"], result["metric"])
    fmt = (lambda v: f"{v:,.0f}") if result["metric"] == "instructions" else (lambda v: f"{v:.5f}")
    t = Table(title=f"{result['model']} on {result['device']} ({result['cpu']}), {result['precision']}: where the time goes")
    for col in ("layer", "ops", unit, "share"):
        t.add_column(col, justify="right" if col in (unit, "share") else "left")
    for row in by_layer(result):
        t.add_row(row["layer"], " ".join(row["ops"]), fmt(row["cost"]), f"{row['share']:.1%}" if row["share"] is not None else "-")
    t.add_row("(per-invoke overhead)", "", fmt(result["overhead"]), f"{result['overhead'] / result['whole']:.1%}")
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(t)
    verdict = "ok" if result["within_tolerance"] else f"OFF by more than {result['tolerance']:.0%}"
    console.print(f"parts + overhead {fmt(result['parts_sum'])} vs whole model {fmt(result['whole'])}: "
                  f"{result['parts_over_whole']:.3f} ({verdict}); {result['measured_now']} measured now, "
                  f"the rest from {result['cost_table']}")
