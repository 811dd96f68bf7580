"""report.json, version 1: the pydantic models that define and validate it.

`docs/report-schema.md` documents every field; :func:`report_json_schema` gives the JSON Schema.
Extra keys are refused, so a report that drifts from this file fails validation instead of
silently growing fields nobody documented.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from edgeprune.histogram_schema import WeightHistogram  # the run directory's weights.json uses it too

REPORT_SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunInfo(_Strict):
    name: str
    run_dir: str
    recipe_path: Optional[str] = None
    started: Optional[str] = None
    seconds: Optional[float] = None


class Latency(_Strict):
    p50: Optional[float] = None
    p90: Optional[float] = None
    p99: Optional[float] = None
    mean: Optional[float] = None


class Parity(_Strict):
    top1_agreement: Optional[float] = None
    max_abs_diff: Optional[float] = None
    tolerance: Optional[float] = None
    within_tolerance: Optional[bool] = None   # None: not judged (quantized exports)
    samples: Optional[int] = None


class Row(_Strict):
    """One deployable artifact on one device (or a Keras stage when the run exported nothing)."""
    stage: str
    format: str                                # tflite | onnx | keras
    quant: Optional[str] = None                # none | int8 | fp16 | dynamic
    device: Optional[str] = None               # None: exported but not benchmarked
    emulated: bool = False
    cpu: Optional[str] = None
    artifact: Optional[str] = None             # path relative to the run dir
    file_bytes: Optional[int] = None
    params: Optional[int] = None
    macs: Optional[int] = None
    test_accuracy: Optional[float] = None      # export (or Keras stage) on the run's test split
    test_samples: Optional[int] = None
    device_accuracy: Optional[float] = None    # measured by the device runner on device_eval_samples
    device_eval_samples: Optional[int] = None
    latency_ms: Optional[Latency] = None
    init_ms: Optional[float] = None
    first_inference_ms: Optional[float] = None
    peak_rss_bytes: Optional[int] = None
    instructions_per_inference: Optional[float] = None
    board_time_ms: Optional[float] = None      # emulated boards: estimated board time (their device metric)
    board: Optional[str] = None                # the real board an emulated device stands for
    arch: Optional[str] = None                 # the device's architecture
    stands_for: Optional[str] = None           # what the device is, in words
    parity: Optional[Parity] = None
    raw: Optional[str] = None                  # bench/<file>@<device>.json
    pareto_latency: Optional[bool] = None      # on the accuracy-vs-latency front of its device
    pareto_size: Optional[bool] = None         # on the accuracy-vs-file-size front of its device


class Recommendation(_Strict):
    device: str
    goal: Literal["recommended", "most_accurate", "fastest", "smallest"]
    row: int                                   # index into rows
    why: str
    stands_for: Optional[str] = None           # recommended: the board or machine the device is, in words


class StageInfo(_Strict):
    stage: str
    model_path: Optional[str] = None
    file_bytes: Optional[int] = None
    params: Optional[int] = None
    macs: Optional[int] = None
    val_accuracy: Optional[float] = None
    test_accuracy: Optional[float] = None


class LayerChange(_Strict):
    name: str
    type: str
    channels_before: Optional[int] = None
    channels_after: Optional[int] = None       # None: layer absent after pruning
    params_before: int
    params_after: Optional[int] = None
    macs_before: int
    macs_after: Optional[int] = None


class PrunedGroup(_Strict):
    id: int
    sources: list[str]
    channels: int
    kept: int
    removed_channels: list[int]
    removed_scores: list[float]
    kept_score_mean: Optional[float] = None
    pinned_reasons: list[str] = []


class Pruning(_Strict):
    before_stage: str
    after_stage: str
    plan_path: Optional[str] = None
    ratio: Optional[float] = None
    criterion: Optional[str] = None
    schedule: Optional[str] = None
    settings: dict[str, Any] = {}
    removed_channels: Optional[int] = None
    params_before: Optional[int] = None
    params_after: Optional[int] = None
    macs_before: Optional[int] = None
    macs_after: Optional[int] = None
    layers: list[LayerChange] = []
    groups: list[PrunedGroup] = []
    steps: list[dict[str, Any]] = []


class Weights(_Strict):
    before_stage: str
    after_stage: str
    layers: list[WeightHistogram]


class Sensitivity(_Strict):
    ratios: list[float]
    baseline_val_accuracy: float
    curves: dict[str, list[Optional[float]]]


class TrainingCurve(_Strict):
    step: str
    history: dict[str, list[float]]


class SkippedDevice(_Strict):
    device: str
    reason: str


class MobileFile(_Strict):
    """The file an Android or iOS app loads for one runtime, and the files that go beside it."""
    runtime: str                               # e.g. "ONNX Runtime Mobile (Android, iOS)"
    format: str                                # ort | tflite
    stage: str
    quant: Optional[str] = None
    file: str                                  # path relative to the run dir
    beside: list[str] = []                     # operators config (.ort); metadata JSON and labels (.tflite)
    file_bytes: Optional[int] = None
    test_accuracy: Optional[float] = None
    why: str
class LayerCost(_Strict):
    layer: str
    ops: list[str]
    before: Optional[float] = None
    after: Optional[float] = None


class DeviceCost(_Strict):
    """Per-layer cost on the device the prune step allocated for (profile.json)."""

    device: str
    cpu: str
    precision: str
    metric: str
    budget: Optional[float] = None
    predicted: Optional[float] = None
    before_whole: float
    after_whole: float
    before_overhead: float
    after_overhead: float
    before_parts_over_whole: Optional[float] = None
    after_parts_over_whole: Optional[float] = None
    counts: dict[str, int] = {}
    full: dict[str, int] = {}
    layers: list[LayerCost]


class Report(_Strict):
    schema_version: Literal[1]
    generated: str
    run: RunInfo
    recipe: Optional[dict[str, Any]] = None          # resolved recipe from recipe.lock.yaml
    seed: Optional[int] = None
    environment: dict[str, Any] = {}
    dataset: dict[str, Any] = {}
    rows: list[Row]
    recommendations: list[Recommendation] = []
    stages: list[StageInfo] = []
    pruning: Optional[Pruning] = None
    weights: Optional[Weights] = None
    sensitivity: Optional[Sensitivity] = None
    device_cost: Optional[DeviceCost] = None
    training: list[TrainingCurve] = []
    skipped_devices: list[SkippedDevice] = []
    mobile: list[MobileFile] = []
    notes: list[str] = Field(default_factory=list, description="what the report could not show, and why")


def validate_report(report: dict) -> Report:
    """Raise pydantic.ValidationError when `report` does not follow schema version 1."""
    return Report.model_validate(report)


def report_json_schema() -> dict:
    return Report.model_json_schema()
