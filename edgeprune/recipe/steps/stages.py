"""Models in and out of the run directory: each step starts from the current stage's model and
leaves its own stage (``models/<stage>.keras``) with that stage's metrics.

Imported by the steps when they run (it loads TensorFlow)."""
from __future__ import annotations

from pathlib import Path

from edgeprune import rundir, zoo
from edgeprune.data.check import check_fits
from edgeprune.modelio import load_model, read_model, save_model
from edgeprune.pruning import model_stats
from edgeprune.pruning.histograms import weight_histograms
from edgeprune.quantize.native_qat import is_native_qat_model, load_native, save_native
from edgeprune.quantize.qat import load_qat, save_qat
from edgeprune.recipe.context import RunContext
from edgeprune.rundir import WEIGHTS_FILE, WeightsFile
from edgeprune.train import evaluate


NATIVE_QAT_FILE = "models/qat.keras"  # the qat stage of backend native: a Keras 3 file (tfmot's: models/qat.h5)


def stage_path(ctx: RunContext, stage: str) -> Path:
    """Where the stage's model is: models/<stage>.keras (the qat stage: qat.h5 from TF-MOT, qat.keras native)."""
    if stage == "qat" and ctx.path(NATIVE_QAT_FILE).exists():
        return ctx.path(NATIVE_QAT_FILE)
    return ctx.path(ctx.stage_files[stage])


def load_stage_model(ctx: RunContext, stage: str):
    if stage == "qat" and stage_path(ctx, stage) == ctx.path(NATIVE_QAT_FILE):
        return load_native(stage_path(ctx, stage))
    if stage == "qat":
        return load_qat(stage_path(ctx, stage))
    return load_model(stage_path(ctx, stage))


def save_stage_model(ctx: RunContext, stage: str, model) -> Path:
    path = stage_path(ctx, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    if stage == "qat":
        if is_native_qat_model(model):
            return save_native(model, ctx.path(NATIVE_QAT_FILE))
        return save_qat(model, path)
    return save_model(model, path, flavor=ctx.model_flavor)


def initial_model(ctx: RunContext):
    if ctx.model_source in zoo.MODELS:
        ds = ctx.dataset
        return zoo.build(ctx.model_source, input_shape=ds.input_shape, num_classes=ds.num_classes, seed=ctx.recipe.seed)

    loaded = read_model(ctx.model_source)
    check_fits(loaded.model, ctx.dataset, "the recipe's steps")
    ctx.model_flavor = loaded.flavor
    return loaded.model


def current_model(ctx: RunContext):
    """The model the next step starts from: the current stage's, or the recipe's model as the baseline."""
    if ctx.current_stage is None:
        model = initial_model(ctx)
        save_stage_model(ctx, "baseline", model)
        ctx.metrics["stages"]["baseline"] = stage_metrics(ctx, "baseline", model)
        ctx.current_stage = "baseline"
        return model
    return load_stage_model(ctx, ctx.current_stage)


def leave_stage(ctx: RunContext, stage: str, model) -> dict:
    """Save `model` as `stage`, make it the current stage; returns its metrics for the step's result."""
    save_stage_model(ctx, stage, model)
    ctx.current_stage = stage
    return stage_metrics(ctx, stage, model)


def stage_metrics(ctx: RunContext, stage: str, model) -> dict:
    ds = ctx.dataset
    if stage == "qat":  # count the float graph the QAT model wraps
        stats = ctx.metrics["stages"].get(float_parent(ctx), {})
        stats = {k: stats.get(k) for k in ("params", "macs", "layers")}
    else:
        stats = model_stats(model)
    path = stage_path(ctx, stage)
    return {
        "model_path": str(path.relative_to(ctx.run_dir)),
        "file_bytes": _bytes(path),
        "params": stats["params"],
        "macs": stats["macs"],
        "val_accuracy": evaluate(model, ds.x_val, ds.y_val),
        "test_accuracy": evaluate(model, ds.x_test, ds.y_test),
        "layers": stats["layers"],
    }


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def float_parent(ctx: RunContext) -> str:
    """The latest float stage made so far (the one QAT wraps and the export ships)."""
    for stage in reversed(ctx.float_stages):
        if stage in ctx.metrics["stages"]:
            return stage
    return "baseline"


def teacher(ctx: RunContext):
    """The model distillation learns from: the baseline."""
    return load_stage_model(ctx, "baseline")


def write_weight_histograms(ctx: RunContext, before_stage: str, before, after) -> str:
    """weights.json for the report, from the models in memory (the report itself needs no TensorFlow)."""
    layers, notes = weight_histograms(before, after)
    hist = WeightsFile(before_stage=before_stage, after_stage="pruned", before_model=ctx.stage_files[before_stage],
                       after_model=ctx.stage_files["pruned"], layers=layers, notes=notes)
    return rundir.write_model(ctx.run_dir, WEIGHTS_FILE, hist)
