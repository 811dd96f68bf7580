"""``edgeprune deploy``: ship the file a run recommends to an SSH board (registered in edgeprune/cli.py).

Above the recipe (a recipe names its run directory) and the harness; moved from ``edgeprune.harness.cli``
so the harness imports no recipe.  Nothing heavy at module top.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeprune.errors import EdgepruneError
from edgeprune.harness.deploy import deploy
from edgeprune.progress import echo
from edgeprune.recipe.schema import load_recipe


def deploy_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (edgeprune run's output, e.g. runs/quickstart), or the recipe that made it.")],
    board: Annotated[str, typer.Option(help="SSH board profile (rpi4, rpi5 or a YAML path).")] = "rpi4",
    host: Annotated[Optional[str], typer.Option(help="user@host[:port] of the board (else the profile's host or $RPI_HOST).")] = None,
    runs: Annotated[int, typer.Option(help="Timed inferences on the board.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed inferences before timing.")] = 5,
) -> None:
    """Copy the file the run recommends for a board to it, time it there, and show the estimate beside it."""
    if run_dir.suffix in (".yaml", ".yml") and run_dir.is_file():  # the recipe: its default run directory
        run_dir = Path("runs") / load_recipe(run_dir).name
    if not (run_dir / "metrics.json").is_file():
        raise EdgepruneError(f"{run_dir} is not a run directory (no metrics.json)",
                             "run the recipe first: edgeprune run RECIPE (make deploy-rpi does both)")
    deploy(run_dir, board, host=host, runs=runs, warmup=warmup, log=echo)
