"""What the steps of one run share: the run directory, the dataset, the metrics being written."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeprune import fileio
from edgeprune.recipe.schema import Recipe
from edgeprune.rundir import METRICS_FILE, metrics_text

# stage name -> where its model file lives (relative to the run dir)
STAGE_FILES = {
    "baseline": "models/baseline.keras",
    "sparse": "models/sparse.keras",
    "pruned": "models/pruned.keras",
    "finetuned": "models/finetuned.keras",
    "qat": "models/qat.h5",
}
FLOAT_STAGES = ("baseline", "sparse", "pruned", "finetuned")
NATIVE_QAT_FILE = "models/qat.keras"  # the QAT stage of quantize {backend: native}: a Keras 3 file


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

    def path(self, rel: str) -> Path:
        return self.run_dir / rel

    def stage_path(self, stage: str) -> Path:
        if stage == "qat" and (self.run_dir / NATIVE_QAT_FILE).exists():
            return self.run_dir / NATIVE_QAT_FILE
        return self.run_dir / STAGE_FILES[stage]

    def write_metrics(self) -> None:
        fileio.write_text(self.run_dir / METRICS_FILE, metrics_text(self.metrics))
