"""quantize: ``ptq`` leaves the settings the export step calibrates with; ``qat`` fine-tunes a
quantization-aware copy of the latest float stage (the ``qat`` stage), with TF-MOT (tf-keras) or
edgeprune's own Keras 3 layers (``backend: native``, a full-int8 TFLite file)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from edgeprune.progress import fit_callback
from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.recipe.steps.finetune import DistillSpec
from edgeprune.rundir import StepResult


class QuantizeStep(Settings):
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


class QuantizeResult(StepResult):
    kind: Literal["quantize"] = "quantize"
    mode: Literal["ptq", "qat"]
    backend: Literal["tfmot", "native"] = "tfmot"   # whose QAT made the qat stage
    ptq: dict[str, Any]                        # int8_io, calibration_samples: settings for the export step
    history: Optional[dict[str, list[float]]] = None
    RECORDED: ClassVar = ("history", "mode", "backend")

    def merge(self, ctx) -> None:
        super().merge(ctx)
        ctx.ptq = self.ptq


def run(ctx, spec: QuantizeStep) -> dict:
    if spec.mode == "ptq":
        return {"kind": "quantize", "mode": "ptq", "ptq": _ptq_settings(spec)}
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.quantize.qat import quantize_qat
    from edgeprune.recipe.steps.stages import current_model, leave_stage, teacher
    from edgeprune.train import fit

    float_model = current_model(ctx)
    if spec.backend == "native":
        return _native_qat(ctx, spec, float_model)
    qat = quantize_qat(float_model, skip_layers=spec.skip_layers, scheme=spec.scheme)
    history = {}
    if spec.epochs:
        d = spec.distill
        fr = fit(qat, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                 patience=0, teacher=teacher(ctx) if d else None, temperature=d.temperature if d else 4.0,
                 alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed, callbacks=[fit_callback("QAT")])
        history = fr.history
    return {"kind": "quantize", "mode": "qat", "history": history, "stage": "qat", "ptq": _ptq_settings(spec),
            "stage_metrics": leave_stage(ctx, "qat", qat)}


def _native_qat(ctx, spec: QuantizeStep, float_model) -> dict:
    """quantize {mode: qat, backend: native}: the float stage carried to Keras 3, quantization-aware
    layers of edgeprune's own (no tfmot), fine-tuned with Keras 3's fit, saved as models/qat.keras."""
    # TensorFlow loads when a step runs, not while the recipe is validated
    import keras

    from edgeprune.losses import output_kind
    from edgeprune.modelio.tfkeras_to_keras3 import to_keras3
    from edgeprune.quantize.native_qat import fine_tune_native, quantize_native
    from edgeprune.recipe.steps.stages import leave_stage

    qat = quantize_native(to_keras3(float_model), skip_layers=spec.skip_layers)
    history = {}
    if spec.epochs:
        history = fine_tune_native(qat, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate,
                                   batch_size=spec.batch_size, from_logits=output_kind(float_model) == "logits",
                                   seed=ctx.recipe.seed, callbacks=[fit_callback("QAT", keras=keras)])
    return {"kind": "quantize", "mode": "qat", "backend": "native", "history": history, "stage": "qat",
            "ptq": _ptq_settings(spec), "stage_metrics": leave_stage(ctx, "qat", qat)}


def _ptq_settings(spec: QuantizeStep) -> dict:
    return {"int8_io": spec.int8_io, "calibration_samples": spec.calibration_samples}


STEP = StepType("quantize", QuantizeStep, QuantizeResult, run, stage="qat", stage_file="models/qat.h5", float_stage=False,
                writes=lambda spec: ("qat",) if spec.mode == "qat" else (), layer_keys=("skip_layers",))
