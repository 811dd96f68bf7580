"""The recipe format: pydantic models, strict (unknown keys are errors), with YAML line numbers.

A recipe names the model (zoo name or file), the dataset, and an ordered list of steps, each a
one-key mapping ``- <kind>: {settings}``.  ``load_recipe`` turns any validation failure into one
line naming the key path and its line in the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeprune.errors import RecipeError
from edgeprune.export.targets import all_precisions, target_names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(Strict):
    name: str = "fashion_mnist"
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    max_train_samples: Optional[int] = Field(None, gt=0)
    test_samples: Optional[int] = Field(None, gt=0, description="limit the test split (default: all of it)")
    scaling: Optional[Literal["unit", "raw", "symmetric"]] = Field(
        None, description="how 8-bit (uint8) pixels become inputs: unit, pixel/255 in [0, 1] (the default); raw, "
                          "0..255 as stored (models that rescale inside, e.g. Keras MobileNetV3); symmetric, "
                          "pixel/127.5 - 1 in [-1, 1] (MobileNetV2-style). Float data are used as stored")


class TrainStep(Strict):
    epochs: int = Field(3, ge=1, le=1000)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0, lt=1.0)
    patience: int = Field(3, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: decay the learning rate to zero over the step's epochs")


class SparsityTrainStep(TrainStep):
    epochs: int = Field(2, ge=1, le=1000)
    penalty: Literal["bn_gamma", "group_lasso"] = "bn_gamma"
    strength: float = Field(1e-4, gt=0.0)


class PruneStep(Strict):
    ratio: float = Field(0.5, ge=0.0, lt=1.0)
    criterion: str = "l1"
    global_pruning: bool = Field(False, alias="global")
    round_to: int = Field(1, ge=1, le=256)
    min_channels: int = Field(1, ge=1)
    protect: list[str] = []
    protect_first: Optional[bool] = Field(None, description="keep the first weight layer whole: true always, false "
                                          "never; unset: only when that pins no group shared with other layers "
                                          "(device-cost allocation: unset means false)")
    overrides: dict[str, float] = {}
    aggregate: Literal["sum", "mean", "max"] = "mean"
    schedule: Literal["oneshot", "linear", "polynomial"] = "oneshot"
    steps: int = Field(1, ge=1, le=50)
    finetune_epochs: int = Field(1, ge=0, description="fine-tuning epochs between gradual steps")
    sensitivity: bool = Field(False, description="scan per-group sensitivity and give fragile groups lower ratios")
    verify: bool = True
    strict: bool = Field(False, description="stop at a layer the engine cannot follow instead of keeping its groups whole")
    recalibrate_bn: bool = Field(True, description="re-estimate BatchNorm moving statistics on training batches after surgery")
    allocation: Literal["ratio", "device_cost"] = Field(
        "ratio", description="ratio: the same ratio per group; device_cost: channels per group from measured device cost")
    device: Optional[str] = Field(None, description="device_cost: the device whose per-op cost table decides")
    budget: Optional[dict[Literal["instructions", "latency_ms", "size_kb", "reduction"], float]] = Field(
        None, description="device_cost: limits all to be met, e.g. {latency_ms: 0.4, size_kb: 28} or {reduction: 6.0}; "
                          "latency_ms is the estimated board time on an emulated board")
    precision: Literal["float32", "float16", "int8", "mixed"] = Field("int8", description="device_cost: the precision to cost")
    keep_float: list[str] = Field([], description="device_cost with precision mixed: the layers kept float")
    max_group_ratio: float = Field(0.95, gt=0.0, lt=1.0, description="device_cost: most of a group that may go")
    best_effort: bool = Field(False, description="device_cost: a budget no channel counts meet ships the cheapest found "
                                                 "(marked in the report) instead of stopping the run before fine-tuning")
    weigh: Literal["score", "accuracy"] = Field(
        "score", description="device_cost: what a step loses — the share of its group's channel score, or the "
                             "validation accuracy lost with that group alone cut to the count (one trial per count)")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _device_cost_settings(self):
        if self.allocation == "device_cost":
            if not self.device or not self.budget:
                raise ValueError("allocation device_cost needs device and budget, e.g. "
                                 "{device: qemu-aarch64, budget: {reduction: 6.0}}")
            if any(v <= 0 for v in self.budget.values()):
                raise ValueError("budget limits must be positive")
            if self.schedule != "oneshot" or self.sensitivity or self.global_pruning or self.overrides:
                raise ValueError("allocation device_cost chooses every group's channels itself: "
                                 "drop schedule, sensitivity, global and overrides")
            if (self.precision == "mixed") != bool(self.keep_float):
                raise ValueError("precision mixed and keep_float go together, e.g. {precision: mixed, keep_float: [conv1]}")
        elif self.device or self.budget or self.keep_float or self.weigh != "score" or self.best_effort:
            raise ValueError("device, budget, keep_float, weigh and best_effort belong to allocation: device_cost")
        return self

    @field_validator("overrides")
    @classmethod
    def _ratios_in_range(cls, v):
        for k, r in v.items():
            if not 0.0 <= r < 1.0:
                raise ValueError(f"override '{k}': ratio {r} not in [0, 1)")
        return v


class SearchStep(Strict):
    """Prune to a budget measured on a device (``edgeprune search`` as a step); its best model is the pruned stage."""

    budget: dict[Literal["latency_ms", "size_kb", "macs", "instructions"], float] = Field(
        description="one limit, e.g. {latency_ms: 0.05} (p50 on the device, estimated board time on an emulated "
                    "board) or {macs: 1.0e6}")
    device: str = "host"
    max_drop: float = Field(0.5, ge=0.0, description="allowed validation-accuracy loss in points")
    criterion: str = "l1"
    ratios: list[float] = [0.2, 0.4, 0.6, 0.8]
    quant: Literal["none", "int8", "fp16", "dynamic"] = "none"
    finetune_epochs: int = Field(1, ge=0)
    round_to: Optional[int] = Field(None, ge=1, le=256, description="default: the device profile's")
    sensitivity: bool = True
    protect: list[str] = []
    protect_first: Optional[bool] = Field(None, description="keep the first weight layer whole: true always, false "
                                          "never; unset: only when that pins no group shared with other layers")
    runs: int = Field(50, ge=1)
    max_train_samples: Optional[int] = Field(10000, gt=0, description="training images per candidate's fine-tuning")
    executor: Literal["inprocess", "ray"] = "inprocess"
    ray_address: Optional[str] = None

    @field_validator("budget")
    @classmethod
    def _one_limit(cls, v):
        if len(v) != 1:
            raise ValueError("give exactly one limit, e.g. {latency_ms: 0.05}")
        if any(x <= 0 for x in v.values()):
            raise ValueError("the limit must be positive")
        return v

    @field_validator("ratios")
    @classmethod
    def _fractions(cls, v):
        if not v or any(not 0.0 < r < 1.0 for r in v):
            raise ValueError("ratios are fractions in (0, 1), e.g. [0.2, 0.4, 0.6]")
        return v


class DistillSpec(Strict):
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)


class FinetuneStep(TrainStep):
    epochs: int = Field(2, ge=1, le=1000)
    learning_rate: float = Field(5e-4, gt=0.0, lt=1.0)
    distill: Optional[DistillSpec] = None


class QuantizeStep(Strict):
    mode: Literal["qat", "ptq"] = "qat"
    epochs: int = Field(1, ge=0, le=1000)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0, lt=1.0)
    skip_layers: list[str] = []
    scheme: Literal["default", "prune_preserve"] = "default"
    backend: Literal["tfmot", "native"] = Field(
        "tfmot", description="tfmot: TF-MOT's QAT on tf-keras; native: edgeprune's Keras 3 QAT (full int8, .keras file)")
    int8_io: bool = False
    calibration_samples: int = Field(200, ge=1, le=100000)
    distill: Optional[DistillSpec] = None

    @model_validator(mode="after")
    def _native_settings(self):
        if self.backend == "native" and (self.distill is not None or self.scheme != "default"):
            raise ValueError("backend native fine-tunes on the labels with the default 8-bit scheme: drop distill "
                             "and scheme, or use backend tfmot")
        return self


def _export_format(v: str) -> str:
    if v not in target_names():
        raise ValueError(f"unknown export format '{v}' (known: {', '.join(target_names())})")
    return v


def _export_precision(v: str) -> str:
    if v not in all_precisions():
        raise ValueError(f"unknown precision '{v}' (known: {', '.join(all_precisions())})")
    return v


class ExportStep(Strict):
    formats: list[Annotated[str, AfterValidator(_export_format)]] = ["tflite", "onnx"]
    stages: Optional[dict[str, list[Annotated[str, AfterValidator(_export_precision)]]]] = Field(
        None, description="stage -> quant modes; default: each float stage as float, the QAT stage as int8")
    opset: int = Field(15, ge=13, le=18)
    parity_tolerance: float = Field(1e-4, gt=0.0)
    precision: Optional[Union[Literal["auto"], list[Annotated[str, AfterValidator(_export_precision)]]]] = Field(
        None, description="precisions of the shipped stage (the QAT stage as int8 plus its float parent): a list, or "
                          "auto (float32, float16, int8, mixed; per device the cheapest within max_accuracy_drop is kept)")
    max_accuracy_drop: float = Field(0.5, ge=0.0, description="points below the most accurate precision (precision: auto)")
    keep_float: Optional[list[str]] = Field(
        None, description="layers a mixed file keeps float; default: chosen per device from measured per-layer cost")
    devices: Optional[list[str]] = Field(
        None, description="devices a mixed file is chosen for; default: the benchmark step's (or --device)")

    @field_validator("keep_float")
    @classmethod
    def _some_layers(cls, v):
        if v is not None and not v:
            raise ValueError("name at least one layer, or leave keep_float out to choose per device")
        return v


class BenchmarkStep(Strict):
    devices: list[str] = ["host"]
    runs: int = Field(50, ge=1, le=100000)
    warmup: int = Field(5, ge=0)
    eval_samples: int = Field(1000, ge=0, description="test images scored on the device (0: latency only)")
    emulated_runs: int = Field(10, ge=1, description="unused on emulated boards with the counting plugin: they run one "
                               "fixed schedule (their counts repeat exactly); kept for other emulated kinds")
    emulated_eval_samples: int = Field(200, ge=0)
    skip_unavailable: bool = Field(True, description="skip emulated devices whose emulator is not installed (said in the report)")


class ReportStep(Strict):
    formats: list[Literal["json", "md", "html"]] = ["json", "md", "html"]


STEP_TYPES: dict[str, type[Strict]] = {
    "train": TrainStep,
    "sparsity_train": SparsityTrainStep,
    "prune": PruneStep,
    "search": SearchStep,
    "finetune": FinetuneStep,
    "quantize": QuantizeStep,
    "export": ExportStep,
    "benchmark": BenchmarkStep,
    "report": ReportStep,
}


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    model: str = Field(description="zoo name (lenet5, resnet8, dscnn, mobilenetv2) or a model file")
    dataset: DatasetSpec = DatasetSpec()
    steps: list[dict]

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v):
        return {"name": v} if isinstance(v, str) else v  # `dataset: fashion_mnist`

    def step_specs(self) -> list[tuple[str, Strict]]:
        return [parse_step(i, s) for i, s in enumerate(self.steps)]


def parse_step(index: int, raw) -> tuple[str, Strict]:
    errors = step_errors(index, raw)
    if errors:
        raise RecipeError(f"step {index + 1}: {errors[0].message}", "see recipes/quickstart.yaml for the format")
    (kind, settings), = raw.items()
    return kind, STEP_TYPES[kind].model_validate(settings or {})


def step_errors(index: int, raw) -> list["_StepError"]:
    """Every problem of one step (empty when it is valid)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        return [_StepError(("steps", index), "each step is a one-key mapping like `- prune: {ratio: 0.5}`")]
    (kind, settings), = raw.items()
    if kind not in STEP_TYPES:
        return [_StepError(("steps", index, kind), f"unknown step '{kind}' (known: {', '.join(STEP_TYPES)})")]
    try:
        STEP_TYPES[kind].model_validate(settings or {})
    except ValidationError as e:
        return [_StepError(("steps", index, kind, *err["loc"]), _message(err)) for err in e.errors()]
    return []


class _StepError(Exception):
    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = loc, message


# ---------------------------------------------------------------------------------------------
# loading with line numbers


def _line_of(node, loc) -> int | None:
    """Walk the composed YAML node tree along a pydantic error location; return the 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return err["msg"]


def load_recipe(path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror}", "check the path") from None
    try:
        tree = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with name, model, dataset and steps", "see recipes/quickstart.yaml")
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem))  # the file name serves
    problems: list[tuple[tuple, str]] = []
    recipe = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += [(tuple(err["loc"]), _message(err)) for err in e.errors()
                     if not (err["loc"] and err["loc"][0] == "steps" and len(err["loc"]) > 1)]
    steps = data.get("steps")
    if isinstance(steps, list):
        problems += [(err.loc, err.message) for i, raw in enumerate(steps) for err in step_errors(i, raw)]
    if problems:
        raise _located(path, tree, problems)
    from edgeprune.data.sources import dataset_names  # numpy only: no TensorFlow yet

    recipe.model = beside_recipe(path, recipe.model)
    recipe.dataset.name = beside_recipe(path, recipe.dataset.name, names=dataset_names())
    from edgeprune.recipe.plan_check import plan_problems  # no TensorFlow either

    problems = plan_problems(recipe, recipe.step_specs())
    if problems:
        raise _located(path, tree, problems)
    return recipe


def beside_recipe(recipe_path, value: str, names=()) -> str:
    """A relative file or folder path in a recipe, resolved from the recipe's folder (not the current one).

    A value that looks like a path (a suffix or a folder in it) or names something beside the recipe
    becomes an absolute path; absolute paths, ``~/...`` and names (zoo models, built-in datasets) stay."""
    if value in names:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    beside = Path(recipe_path).parent / path
    if path.suffix or len(path.parts) > 1 or beside.exists():
        return os.path.abspath(beside)
    return value


def located_problems(path, problems: list[tuple[tuple, str]]) -> RecipeError:
    """Problems found after loading (they needed the model), with their lines in the recipe file."""
    return _located(path, yaml.compose(Path(path).read_text()), problems)


def _located(path, tree, problems: list[tuple[tuple, str]]) -> RecipeError:
    """All problems in one line, each as ``FILE:LINE: 'key.path': message``."""
    parts = []
    for loc, message in problems:
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        parts.append(f"{path}:{_line_of(tree, loc)}: '{key}': {message}")
    head = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return RecipeError(head + "; ".join(parts), "see recipes/quickstart.yaml for the format")


def check_model_file(source: str) -> None:
    """A model named by a file name (a suffix or a folder in it) must exist; zoo names are checked by the runner.
    Needs no TensorFlow, so a typo is refused at once."""
    if not Path(source).exists() and (Path(source).suffix or "/" in source):
        raise RecipeError(f"model file '{source}' does not exist", "check the recipe's model: (or --model)")
