"""The run directory's own files, typed and versioned (report.json has :mod:`edgeprune.report.schema`).

Steps write these; the report reads them and nothing else (no model files, no TensorFlow).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeprune import fileio
from edgeprune.report.schema import WeightHistogram

WEIGHTS_FILE = "weights.json"
WEIGHTS_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WeightsFile(_Strict):
    """weights.json: |w| histograms of every kernel before and after pruning, taken when the step ran."""
    schema_version: Literal[1] = WEIGHTS_SCHEMA_VERSION
    before_stage: str
    after_stage: str
    before_model: str                  # the model files (relative to the run dir) the histograms describe
    after_model: str
    layers: list[WeightHistogram]
    notes: list[str] = []


def write_model(run_dir: Path, name: str, model: BaseModel) -> str:
    """Write a run-directory file atomically; returns its path relative to the run dir."""
    fileio.write_text(Path(run_dir) / name, model.model_dump_json(indent=1) + "\n")
    return name


def read_model(run_dir: Path, name: str, cls: type[BaseModel], notes: list[str]) -> Optional[BaseModel]:
    """The file parsed as `cls`, or None with a note saying why it is missing or unreadable."""
    path = Path(run_dir) / name
    if not path.exists():
        notes.append(f"{name} is missing")
        return None
    try:
        return cls.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as e:
        notes.append(f"{name} does not follow its schema ({str(e).splitlines()[0]})")
        return None
