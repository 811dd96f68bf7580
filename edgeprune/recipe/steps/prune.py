"""prune: remove channels and rebuild the smaller model (the ``pruned`` stage).

Two allocations: ``ratio`` (the same share of every group, or per-layer overrides, or a global
threshold; one shot or gradual) and ``device_cost`` (channels per group chosen from the device's
measured per-op cost under a budget, edgeprune.devicecost.prune)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from edgeprune.prune_options import PruneOptions
from edgeprune.recipe.steps.base import StepType
from edgeprune.rundir import PruningInfo, StepResult
from edgeprune.strategies.schedule import gradual_prune


class PruneStep(PruneOptions):
    """The prune options the CLI and the Python API share (edgeprune.prune_options), and what only a
    recipe does: gradual schedules, a sensitivity scan, the equivalence check."""

    schedule: Literal["oneshot", "linear", "polynomial"] = "oneshot"
    steps: int = Field(1, ge=1, le=50)
    finetune_epochs: int = Field(1, ge=0, description="fine-tuning epochs between gradual steps")
    sensitivity: bool = Field(False, description="scan per-group sensitivity and give fragile groups lower ratios")
    verify: bool = True
    DEVICE_COST_EXCLUDES: ClassVar[tuple[str, ...]] = ("schedule", "sensitivity", "global", "overrides")


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
    from edgeprune.devicecost.prune import device_cost_prune, recalibrate
    from edgeprune.pruning import prune, verify_inputs, verify_pruning
    from edgeprune.pruning.recalibrate import batchnorm_layers
    from edgeprune.recipe.steps.stages import current_model, leave_stage, write_weight_histograms
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
        recalibrated = recalibrate(pruned, spec, ds)
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
        recalibrated = recalibrate(pruned, spec, ds)
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
                device_keys=("device", "compare_devices"), layer_keys=("protect", "keep_float", "overrides"))
