"""What the steps of one run share: the run directory, the dataset, the metrics being written."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune import fileio
from edgeprune.rundir import METRICS_FILE, metrics_text

if TYPE_CHECKING:
    from edgeprune.recipe.schema import Recipe


@dataclass
class RunContext:
    recipe: Recipe
    run_dir: Path
    dataset: object
    model_source: str                  # zoo name or path given by the user
    model_flavor: str = "keras3"       # which Keras the user's files are written for
    devices: list[str] | None = None   # --device overrides the benchmark step's list
    metrics: dict = field(default_factory=dict)
    current_stage: str | None = None   # stage whose model the next step starts from
    ptq: dict | None = None            # quantize(mode=ptq) settings for the export step
    log: object = print
    stage_files: dict[str, str] = field(default_factory=dict)  # stage -> model file (from the steps' declarations)
    float_stages: tuple[str, ...] = ()                          # the float ones, in the order a run makes them

    def path(self, rel: str) -> Path:
        return self.run_dir / rel

    def write_metrics(self) -> None:
        fileio.write_text(self.run_dir / METRICS_FILE, metrics_text(self.metrics))
