"""train: fit the baseline on the recipe's dataset; the trained model is cached by content hash
across runs, so recipes that share a model and training settings train it once."""
from __future__ import annotations

import json
from typing import ClassVar, Literal, Optional

from pydantic import Field

from edgeprune.progress import fit_callback
from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.rundir import StepResult


class TrainStep(Settings):
    epochs: int = Field(3, ge=1, le=1000)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0, lt=1.0)
    patience: int = Field(3, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: decay the learning rate to zero over the step's epochs")


class TrainResult(StepResult):
    kind: Literal["train"] = "train"
    history: Optional[dict[str, list[float]]] = None
    reused_from: Optional[str] = None          # the content-addressed cache the baseline came from
    RECORDED: ClassVar = ("history", "reused_from")


def run(ctx, spec: TrainStep) -> dict:
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.modelio import load_model, save_model
    from edgeprune.recipe.cache import trained_model_cache
    from edgeprune.recipe.steps.stages import initial_model, leave_stage
    from edgeprune.train import fit

    model = initial_model(ctx)
    cached = trained_model_cache(ctx, spec, model)
    result = {"kind": "train"}
    if cached.exists():
        model = load_model(cached)
        result["reused_from"] = str(cached)
        history = cached.with_suffix(".history.json")
        if history.exists():  # how the cached model was trained, for the report's training curves
            result["history"] = json.loads(history.read_text())
    else:
        fr = fit(model, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                 patience=spec.patience, seed=ctx.recipe.seed, lr_schedule=spec.lr_schedule,
                 callbacks=[fit_callback("train")])
        result["history"] = fr.history
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_model(model, cached, flavor=ctx.model_flavor)
        cached.with_suffix(".history.json").write_text(json.dumps(fr.history))
    return result | {"stage": "baseline", "stage_metrics": leave_stage(ctx, "baseline", model)}


STEP = StepType("train", TrainStep, TrainResult, run, stage="baseline")
