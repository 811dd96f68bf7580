"""The run directory's own files, typed and versioned (report.json has :mod:`edgeprune.report.schema`).

metrics.json is :class:`RunMetrics`; each step's result (cached in ``.state/``) is a
:class:`StepResult` (each step's own model lives in its module under ``edgeprune/recipe/steps/``,
told apart by ``kind``) and knows how it merges into the metrics; weights.json
is :class:`WeightsFile`.  Steps write these; the report reads them and nothing else (no model
files, no TensorFlow).  Extra keys are refused, so a file that drifts from this module fails
validation instead of silently growing undocumented fields.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from edgeprune import fileio
from edgeprune.histogram_schema import WeightHistogram

METRICS_FILE = "metrics.json"
METRICS_SCHEMA_VERSION = 1
WEIGHTS_FILE = "weights.json"
WEIGHTS_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A row whose producer (an export target, a device runner) may report more than the fields named here."""
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------------------------
# pieces of metrics.json


class StageMetrics(_Strict):
    """One model stage (baseline, sparse, pruned, finetuned, qat) as measured when it was written."""
    model_path: str                    # relative to the run dir
    file_bytes: int
    params: Optional[int] = None       # None: not counted (a QAT model without its float parent)
    macs: Optional[int] = None
    val_accuracy: float
    test_accuracy: float
    layers: Optional[list[dict[str, Any]]] = None   # name, type, output_shape, params, macs


class ExportRow(_Open):
    stage: str
    format: str
    quant: str
    path: str
    export_seconds: float
    file_bytes: int
    accuracy: Optional[float] = None
    top1_agreement: Optional[float] = None
    max_abs_diff: Optional[float] = None
    tolerance: Optional[float] = None
    within_tolerance: Optional[bool] = None
    samples: Optional[int] = None


class BenchmarkRow(_Open):
    export: str                        # ExportRow.path
    stage: str
    format: str
    quant: str
    device: str
    emulated: bool = False
    cpu: Optional[str] = None
    latency_ms: dict[str, Optional[float]] = {}
    init_ms: Optional[float] = None
    first_inference_ms: Optional[float] = None
    peak_rss_bytes: Optional[int] = None
    accuracy: Optional[float] = None
    eval_samples: Optional[int] = None
    runs: Optional[int] = None
    instructions_per_inference: Optional[float] = None
    arch: Optional[str] = None              # the device profile's architecture (aarch64, armv7, native)
    stands_for: Optional[str] = None        # what the device is, in words ("Raspberry Pi 4 Model B (emulated Cortex-A72)")
    board_time_ms: Optional[float] = None   # emulated boards: the estimated board time (the device metric)
    board_time: Optional[dict] = None       # how it was estimated: board, core, bound, instruction classes, misses
    emulator_ms: Optional[dict] = None      # emulated boards: the emulator's own wall-clock (not board time)
    raw: str                           # bench/<file>@<device>.json


class SkippedDevice(_Strict):
    device: str
    reason: str


class PruningInfo(_Strict):
    plan_path: Optional[str] = None
    ratio: Optional[float] = None
    criterion: Optional[str] = None
    schedule: Optional[str] = None
    removed_channels: Optional[int] = None
    steps: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []             # groups kept whole, and why (the plan's notes)
    sensitivity_path: Optional[str] = None


class SearchInfo(_Strict):
    status: str
    summary_path: str
    budget: dict[str, float]
    device: str
    best_trial: int
    best_ratio: float
    best_measured: dict[str, Any]
    trials: int
    warning: Optional[str] = None


class StepRecord(_Strict):
    """One entry of metrics.json's ``steps``: how the step went, plus what the report shows of it."""
    name: str
    index: int
    status: Literal["done", "cached"]
    seconds: float
    history: Optional[dict[str, list[float]]] = None
    reused_from: Optional[str] = None
    mode: Optional[str] = None
    backend: Optional[str] = None                  # quantize with mode qat: tfmot or native
    distill: Optional[bool] = None
    equivalence_max_abs_diff: Optional[float] = None
    bn_recalibrated_layers: Optional[int] = None
    skipped_devices: Optional[list[SkippedDevice]] = None
    device_cost: Optional[dict[str, Any]] = None   # prune with allocation: device_cost
    notes: Optional[list[str]] = None              # export: files not written, and why (precision sparse)
    sparse_1x1: Optional[dict[str, Any]] = None    # finetune with sparse_1x1: target and zeros reached


class RunMetrics(_Strict):
    """metrics.json, version 1."""
    schema_version: Literal[1] = METRICS_SCHEMA_VERSION
    run: dict[str, Any]                # name, recipe_path, started, seconds
    environment: dict[str, Any] = {}
    seed: Optional[int] = None
    dataset: dict[str, Any] = {}
    stages: dict[str, StageMetrics] = {}
    steps: list[StepRecord] = []
    exports: list[ExportRow] = []
    benchmarks: list[BenchmarkRow] = []
    skipped_devices: list[SkippedDevice] = []
    pruning: Optional[PruningInfo] = None
    search: Optional[SearchInfo] = None
    precision: Optional[dict[str, Any]] = None
    report_files: list[str] = []


def metrics_text(metrics: dict) -> str:
    """metrics.json's text for the metrics dict a run keeps, validated first (keys it holds, as it holds them)."""
    return RunMetrics.model_validate(metrics).model_dump_json(indent=1, exclude_unset=True) + "\n"


def read_metrics(path: Path) -> dict:
    """metrics.json as a plain dict, validated (raises ValueError naming the problem)."""
    try:
        m = RunMetrics.model_validate_json(Path(path).read_text())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise ValueError(f"key '{where}': {first['msg']}") from None
    return m.model_dump(mode="json", exclude_unset=True)


# ---------------------------------------------------------------------------------------------
# step results: what each step returns; the runner caches them and merges them into metrics.json.
# The base: each step's own result model is in its module (edgeprune/recipe/steps/).


class StepResult(_Strict):
    kind: str
    stage: Optional[str] = None                # the stage this step wrote (the next step starts from it)
    stage_metrics: Optional[StageMetrics] = None
    RECORDED: ClassVar[tuple[str, ...]] = ()   # fields copied into the step's entry in metrics.json

    def merge(self, ctx) -> None:
        """Put what this step produced into ``ctx.metrics`` (and the run state on ``ctx``)."""
        if self.stage:
            ctx.metrics["stages"][self.stage] = self.stage_metrics.model_dump(mode="json")
            ctx.current_stage = self.stage

    def record(self) -> dict:
        return self.model_dump(mode="json", include=set(self.RECORDED), exclude_none=True)

    def artifacts(self) -> list[str]:
        """Files (relative to the run dir) that must still exist for a cached copy of this result to count."""
        return [self.stage_metrics.model_path] if self.stage_metrics else []


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
