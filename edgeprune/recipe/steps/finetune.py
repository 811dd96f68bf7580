"""finetune: train the current model further (the ``finetuned`` stage), optionally distilling from
the baseline."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from edgeprune.progress import fit_callback
from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.recipe.steps.train import TrainStep
from edgeprune.rundir import StepResult


class DistillSpec(Settings):
    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)


class FinetuneStep(TrainStep):
    epochs: int = Field(2, ge=1, le=1000)
    learning_rate: float = Field(5e-4, gt=0.0, lt=1.0)
    distill: Optional[DistillSpec] = None
    sparse_1x1: Optional[float] = Field(
        None, gt=0.0, lt=1.0,
        description="zero this fraction of every 1×1 conv kernel (unstructured, by magnitude, per layer; gradually "
                    "over the epochs, then kept) so XNNPACK's sparse path can run it: more than 2/3, e.g. 0.8; "
                    "export then adds precision sparse (docs/precision.md)")


class FinetuneResult(StepResult):
    kind: Literal["finetune"] = "finetune"
    history: dict[str, list[float]] = {}
    distill: bool = False
    sparse_1x1: Optional[dict[str, Any]] = None  # target, layers, zero fraction reached
    RECORDED: ClassVar = ("history", "distill", "sparse_1x1")


def run(ctx, spec: FinetuneStep) -> dict:
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.recipe.steps.stages import current_model, leave_stage, teacher
    from edgeprune.train import fit

    model = current_model(ctx)
    d = spec.distill
    sparse = None
    if spec.sparse_1x1 is not None:
        from edgeprune.strategies.sparse_1x1 import Sparse1x1  # TensorFlow: only when the step runs

        sparse = Sparse1x1(model, spec.sparse_1x1)
    fr = fit(model, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
             patience=spec.patience, teacher=teacher(ctx) if d else None, temperature=d.temperature if d else 4.0,
             alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed, lr_schedule=spec.lr_schedule,
             callbacks=[fit_callback("fine-tune")] + ([sparse] if sparse else []))
    summary = None
    if sparse is not None:
        sparse.finish()  # after fit: early stopping restores its best weights after every callback's end
        summary = sparse.summary()
        ctx.log(f"      1×1 kernels: {summary['zero_fraction']:.1%} zero over {summary['layers']} layers "
                f"(sparse_1x1 {spec.sparse_1x1:g})")
    return {"kind": "finetune", "history": fr.history, "distill": bool(d), "stage": "finetuned",
            "sparse_1x1": summary, "stage_metrics": leave_stage(ctx, "finetuned", model)}


STEP = StepType("finetune", FinetuneStep, FinetuneResult, run, stage="finetuned")
