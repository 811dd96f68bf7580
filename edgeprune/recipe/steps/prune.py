"""prune: remove channels and rebuild the smaller model (the ``pruned`` stage).

Two allocations: ``ratio`` (the same share of every group, or per-layer overrides, or a global
threshold; one shot or gradual) and ``device_cost`` (channels per group chosen from the device's
measured per-op cost under a budget, edgeprune.profiling.steps)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.rundir import PruningInfo, StepResult


class PruneStep(Settings):
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


class PrunedStageResult(StepResult):
    """What the steps that make the ``pruned`` stage (prune, search) have in common."""

    weights_path: Optional[str] = None
    sensitivity_path: Optional[str] = None     # a sensitivity scan ran: the report plots its curves

    def merge(self, ctx) -> None:
        super().merge(ctx)
        if self.sensitivity_path:
            ctx.metrics.setdefault("pruning", {})["sensitivity_path"] = self.sensitivity_path

    def artifacts(self) -> list[str]:
        return super().artifacts() + ([self.weights_path] if self.weights_path else [])


class PruneResult(PrunedStageResult):
    kind: Literal["prune"] = "prune"
    pruning: PruningInfo
    equivalence_max_abs_diff: Optional[float] = None
    verify: Optional[dict[str, Any]] = None      # the equivalence check's details (inputs used, weak or not)
    device_cost: Optional[dict[str, Any]] = None  # allocation: device_cost — the profile it allocated by
    bn_recalibrated_layers: int = 0
    RECORDED: ClassVar = ("equivalence_max_abs_diff", "bn_recalibrated_layers", "device_cost")

    def merge(self, ctx) -> None:
        ctx.metrics["pruning"] = self.pruning.model_dump(mode="json", exclude_none=True)
        super().merge(ctx)


def run(ctx, spec: PruneStep) -> dict:
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.profiling.steps import device_cost_prune
    from edgeprune.pruning import prune, verify_inputs, verify_pruning
    from edgeprune.pruning.recalibrate import batchnorm_layers, recalibrate_batchnorm
    from edgeprune.recipe.steps.stages import current_model, leave_stage, write_weight_histograms
    from edgeprune.strategies.schedule import gradual_prune
    from edgeprune.strategies.sensitivity import sensitivity_overrides, sensitivity_scan

    model = current_model(ctx)
    ds = ctx.dataset
    kwargs = dict(criterion=spec.criterion, global_pruning=spec.global_pruning, round_to=spec.round_to,
                  min_channels=spec.min_channels, protect=spec.protect, protect_first=spec.protect_first,
                  overrides=dict(spec.overrides), aggregate=spec.aggregate, dataset=ds, seed=ctx.recipe.seed,
                  strict=spec.strict)
    result: dict = {"kind": "prune"}

    def verify(pruned, plan) -> None:
        x, described = verify_inputs(model, ds, ctx.recipe.dataset.name)
        result["verify"] = verify_pruning(model, pruned, plan, x, inputs=described)
        result["equivalence_max_abs_diff"] = result["verify"]["output_max_abs_diff"]

    if spec.sensitivity:
        scan = sensitivity_scan(model, ds, criterion=spec.criterion, run_dir=ctx.run_dir)
        kwargs["overrides"] = {**sensitivity_overrides(scan, spec.ratio), **kwargs["overrides"]}
        result["sensitivity_path"] = "sensitivity.json"
    if spec.allocation == "device_cost":
        pruned, plan, result["device_cost"] = device_cost_prune(ctx, spec, model)
        steps = []
        if spec.verify:
            verify(pruned, plan)
        recalibrated = recalibrate_batchnorm(pruned, ds.x_train) if spec.recalibrate_bn else 0
    elif spec.schedule == "oneshot":
        pruned, plan = prune(model, spec.ratio, **kwargs)
        steps = []
        first_layer = plan.settings.get("first_layer")  # what protect_first unset did about the first layer
        if first_layer and not any(n["kind"] == "protect_first" for n in plan.kept):
            ctx.log(f"      note: {first_layer['message']}")
        for note in plan.kept:  # groups kept whole (a layer the engine cannot follow, heavy protection)
            ctx.log(f"warning: {note['message']}")
        if spec.verify:
            verify(pruned, plan)
            if result["verify"]["weak"]:
                ctx.log(f"warning: {result['verify']['note']}")
        # after the equivalence check, which compares the surgery itself with the zeroed original
        recalibrated = recalibrate_batchnorm(pruned, ds.x_train) if spec.recalibrate_bn else 0
    else:
        kwargs.pop("dataset")
        # between steps the pruned model recovers by distilling from the model before pruning
        gr = gradual_prune(model, ds, target_ratio=spec.ratio, steps=spec.steps, schedule=spec.schedule,
                           finetune_epochs=spec.finetune_epochs, teacher=model,
                           recalibrate_bn=spec.recalibrate_bn, **kwargs)
        pruned, plan, steps = gr.model, gr.plans[-1], gr.history
        recalibrated = len(batchnorm_layers(pruned)) if spec.recalibrate_bn else 0  # after each step
        for i, p in enumerate(gr.plans):
            p.save(ctx.path(f"plans/step-{i + 1}.json"))
    result["bn_recalibrated_layers"] = recalibrated
    plan.save(ctx.path("plan.json"))
    before_stage = ctx.current_stage
    stage_metrics = leave_stage(ctx, "pruned", pruned)
    result["weights_path"] = write_weight_histograms(ctx, before_stage, model, pruned)
    result["pruning"] = {"plan_path": "plan.json", "ratio": spec.ratio, "criterion": spec.criterion,
                         "schedule": spec.schedule, "removed_channels": plan.removed_channels, "steps": steps,
                         "kept": plan.kept}
    return result | {"stage": "pruned", "stage_metrics": stage_metrics}


STEP = StepType("prune", PruneStep, PruneResult, run, stage="pruned",
                device_keys=("device",), layer_keys=("protect", "keep_float", "overrides"))
