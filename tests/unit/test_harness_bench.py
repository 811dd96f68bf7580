"""`edgeprune bench` / `edgeprune devices`: bench() over models × devices, the JSON file, the tables."""
from __future__ import annotations

import numpy as np
import typer
from typer.testing import CliRunner

from edgeprune.harness.bench import eval_arrays
from edgeprune.harness.cli import bench_cmd, devices_cmd


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("bench")(bench_cmd)
    app.command("devices")(devices_cmd)
    return app


def test_eval_arrays_from_a_dataset_name():
    x, y, desc = eval_arrays("fashion_mnist", 64)
    assert x.shape == (64, 28, 28, 1) and x.dtype == np.float32 and y.shape == (64,)
    assert 0.0 <= x.min() and x.max() <= 1.0 and "fashion_mnist" in desc


def test_cli_devices_lists_the_profiles():
    res = CliRunner().invoke(_app(), ["devices"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in ("host", "qemu-aarch64", "qemu-aarch64-a76", "qemu-armv7", "rpi4", "rpi5", "cortex-a76"):
        assert name in res.output
