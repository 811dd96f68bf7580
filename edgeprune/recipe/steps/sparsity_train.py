"""sparsity_train: train with a sparsity penalty (BatchNorm gammas or group lasso) so that whole
channels fall towards zero before pruning."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from edgeprune.progress import fit_callback
from edgeprune.recipe.steps.base import StepType
from edgeprune.recipe.steps.train import TrainStep
from edgeprune.rundir import StepResult


class SparsityTrainStep(TrainStep):
    epochs: int = Field(2, ge=1, le=1000)
    penalty: Literal["bn_gamma", "group_lasso"] = "bn_gamma"
    strength: float = Field(1e-4, gt=0.0)


class SparsityTrainResult(StepResult):
    kind: Literal["sparsity_train"] = "sparsity_train"
    history: dict[str, list[float]] = {}
    RECORDED: ClassVar = ("history",)


def run(ctx, spec: SparsityTrainStep) -> dict:
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.recipe.steps.stages import current_model, leave_stage
    from edgeprune.strategies.sparsity import sparsity_train

    model = current_model(ctx)
    history = sparsity_train(model, ctx.dataset, epochs=spec.epochs, penalty=spec.penalty, strength=spec.strength,
                             learning_rate=spec.learning_rate, batch_size=spec.batch_size, seed=ctx.recipe.seed,
                             lr_schedule=spec.lr_schedule, callbacks=[fit_callback("sparsity training")])
    return {"kind": "sparsity_train", "history": history, "stage": "sparse",
            "stage_metrics": leave_stage(ctx, "sparse", model)}


STEP = StepType("sparsity_train", SparsityTrainStep, SparsityTrainResult, run, stage="sparse")
