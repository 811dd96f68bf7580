"""Typer commands ``edgeprune bench`` and ``edgeprune devices`` (registered in edgeprune/cli.py).

Nothing heavy at module top: the harness is imported inside the commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgeprune.harness.bench import bench
from edgeprune.harness.profiles import load_profiles, profile_dirs
from edgeprune.harness.table import profiles_table, results_table
from edgeprune.tables import console as _console


def bench_cmd(
    model_file: Annotated[List[Path], typer.Argument(help="Exported .tflite/.onnx/.ort files to measure.")],
    device: Annotated[List[str], typer.Option("--device", "-d", help="Device profile name or YAML path; repeat for several (see `edgeprune devices`).")] = ["host"],  # noqa: B006
    data: Annotated[Optional[str], typer.Option(help="Dataset name or .npz for on-device accuracy (first --eval-samples test images). A :raw or :symmetric suffix (e.g. my.npz:raw) changes how uint8 pixels are scaled (default :unit, pixel/255 in [0, 1]); float data are used as stored.")] = None,
    runs: Annotated[int, typer.Option(help="Timed inferences per model and device.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed inferences before timing.")] = 5,
    eval_samples: Annotated[int, typer.Option(help="Test images used for accuracy.")] = 1000,
    json: Annotated[Optional[Path], typer.Option("--json", help="Write all results (with raw latencies and predictions) here.")] = None,
    host: Annotated[Optional[str], typer.Option(help="user@host[:port] for ssh devices (else the profile's host or $RPI_HOST).")] = None,
) -> None:
    """Measure size, latency percentiles, memory and accuracy of model files on devices."""
    results = bench(model_file, device, data=data, runs=runs, warmup=warmup, json_out=json,
                    eval_samples=eval_samples, host=host)
    console = _console()
    console.print(results_table(results))
    for note in sorted({r["note"] for r in results if r.get("note")}):
        console.print(f"[yellow]note:[/yellow] {note}")
    if json:
        console.print(f"results written to {json}")


def devices_cmd() -> None:
    """List the device profiles (shipped ones, ~/.config/edgeprune/devices/, $EDGEPRUNE_DEVICES)."""
    console = _console()
    broken: dict = {}
    console.print(profiles_table(load_profiles(broken=broken)))
    for error in broken.values():
        console.print(f"[yellow]not usable:[/yellow] {error}", soft_wrap=True)
    console.print("searched: " + ", ".join(str(d) for d in profile_dirs()))
