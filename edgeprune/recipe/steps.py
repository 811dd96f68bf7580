"""One function per recipe step.  A step reads what earlier steps wrote into the run directory
and returns a result dict that the runner merges into metrics.json (and caches)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from edgeprune import rundir
from edgeprune.errors import EdgepruneError
from edgeprune.pruning.histograms import weight_histograms
from edgeprune.recipe.context import FLOAT_STAGES, STAGE_FILES, RunContext
from edgeprune.rundir import WEIGHTS_FILE, WeightsFile


# ---------------------------------------------------------------------------------------------
# models in and out of the run directory


def load_stage_model(ctx: RunContext, stage: str):
    if stage == "qat":
        from edgeprune.quantize.qat import load_qat

        return load_qat(ctx.stage_path(stage))
    from edgeprune.modelio import load_model

    return load_model(ctx.stage_path(stage))


def save_stage_model(ctx: RunContext, stage: str, model) -> Path:
    path = ctx.stage_path(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    if stage == "qat":
        from edgeprune.quantize.qat import save_qat

        return save_qat(model, path)
    from edgeprune.modelio import save_model

    return save_model(model, path, flavor=ctx.model_flavor)


def initial_model(ctx: RunContext):
    from edgeprune import zoo

    if ctx.model_source in zoo.MODELS:
        ds = ctx.dataset
        return zoo.build(ctx.model_source, input_shape=ds.input_shape, num_classes=ds.num_classes, seed=ctx.recipe.seed)
    from edgeprune.modelio import read_model

    loaded = read_model(ctx.model_source)
    ctx.model_flavor = loaded.flavor
    return loaded.model


def current_model(ctx: RunContext):
    if ctx.current_stage is None:
        model = initial_model(ctx)
        save_stage_model(ctx, "baseline", model)
        ctx.metrics["stages"]["baseline"] = stage_metrics(ctx, "baseline", model)
        ctx.current_stage = "baseline"
        return model
    return load_stage_model(ctx, ctx.current_stage)


def stage_metrics(ctx: RunContext, stage: str, model) -> dict:
    from edgeprune.pruning import model_stats
    from edgeprune.train import evaluate

    ds = ctx.dataset
    inner = model
    if stage == "qat":  # count the float graph the QAT model wraps
        stats = ctx.metrics["stages"].get(_float_parent(ctx), {})
        stats = {k: stats.get(k) for k in ("params", "macs", "layers")}
    else:
        stats = model_stats(inner)
    path = ctx.stage_path(stage)
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


def _float_parent(ctx: RunContext) -> str:
    for stage in reversed(FLOAT_STAGES):
        if stage in ctx.metrics["stages"]:
            return stage
    return "baseline"


def write_weight_histograms(ctx: RunContext, before_stage: str, before, after) -> str:
    """weights.json for the report, from the models in memory (the report itself needs no TensorFlow)."""
    layers, notes = weight_histograms(before, after)
    hist = WeightsFile(before_stage=before_stage, after_stage="pruned", before_model=STAGE_FILES[before_stage],
                       after_model=STAGE_FILES["pruned"], layers=layers, notes=notes)
    return rundir.write_model(ctx.run_dir, WEIGHTS_FILE, hist)


# ---------------------------------------------------------------------------------------------
# steps


def step_train(ctx: RunContext, spec) -> dict:
    """Train the baseline; the trained model is cached by content hash across runs."""
    from edgeprune.recipe.cache import trained_model_cache
    from edgeprune.train import fit

    model = initial_model(ctx)
    cached = trained_model_cache(ctx, spec, model)
    result = {"kind": "train"}
    if cached.exists():
        from edgeprune.modelio import load_model

        model = load_model(cached)
        result["reused_from"] = str(cached)
        history = cached.with_suffix(".history.json")
        if history.exists():  # how the cached model was trained, for the report's training curves
            import json

            result["history"] = json.loads(history.read_text())
    else:
        fr = fit(model, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                 patience=spec.patience, seed=ctx.recipe.seed, lr_schedule=spec.lr_schedule)
        result["history"] = fr.history
        cached.parent.mkdir(parents=True, exist_ok=True)
        from edgeprune.modelio import save_model

        save_model(model, cached, flavor=ctx.model_flavor)
        import json

        cached.with_suffix(".history.json").write_text(json.dumps(fr.history))
    save_stage_model(ctx, "baseline", model)
    ctx.current_stage = "baseline"
    return result | {"stage": "baseline", "stage_metrics": stage_metrics(ctx, "baseline", model)}


def step_sparsity_train(ctx: RunContext, spec) -> dict:
    from edgeprune.strategies.sparsity import sparsity_train

    model = current_model(ctx)
    history = sparsity_train(model, ctx.dataset, epochs=spec.epochs, penalty=spec.penalty, strength=spec.strength,
                             learning_rate=spec.learning_rate, batch_size=spec.batch_size, seed=ctx.recipe.seed,
                             lr_schedule=spec.lr_schedule)
    save_stage_model(ctx, "sparse", model)
    ctx.current_stage = "sparse"
    return {"kind": "sparsity_train", "history": history, "stage": "sparse", "stage_metrics": stage_metrics(ctx, "sparse", model)}


def step_prune(ctx: RunContext, spec) -> dict:
    from edgeprune.pruning import prune, verify_equivalence
    from edgeprune.pruning.recalibrate import batchnorm_layers, recalibrate_batchnorm

    model = current_model(ctx)
    ds = ctx.dataset
    kwargs = dict(criterion=spec.criterion, global_pruning=spec.global_pruning, round_to=spec.round_to,
                  min_channels=spec.min_channels, protect=spec.protect, protect_first=spec.protect_first,
                  overrides=dict(spec.overrides), aggregate=spec.aggregate, dataset=ds, seed=ctx.recipe.seed)
    result: dict = {"kind": "prune"}
    if spec.sensitivity:
        from edgeprune.strategies.sensitivity import sensitivity_overrides, sensitivity_scan

        scan = sensitivity_scan(model, ds, criterion=spec.criterion, run_dir=ctx.run_dir)
        kwargs["overrides"] = {**sensitivity_overrides(scan, spec.ratio), **kwargs["overrides"]}
        result["sensitivity_path"] = "sensitivity.json"
    if spec.schedule == "oneshot":
        pruned, plan = prune(model, spec.ratio, **kwargs)
        steps = []
        if spec.verify:
            n = min(64, len(ds.x_val))
            result["equivalence_max_abs_diff"] = verify_equivalence(model, pruned, plan, ds.x_val[:n])
        # after the equivalence check, which compares the surgery itself with the zeroed original
        recalibrated = recalibrate_batchnorm(pruned, ds.x_train) if spec.recalibrate_bn else 0
    else:
        from edgeprune.strategies.schedule import gradual_prune

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
    save_stage_model(ctx, "pruned", pruned)
    ctx.current_stage = "pruned"
    result["weights_path"] = write_weight_histograms(ctx, before_stage, model, pruned)
    result["pruning"] = {"plan_path": "plan.json", "ratio": spec.ratio, "criterion": spec.criterion,
                         "schedule": spec.schedule, "removed_channels": plan.removed_channels, "steps": steps}
    return result | {"stage": "pruned", "stage_metrics": stage_metrics(ctx, "pruned", pruned)}


def step_search(ctx: RunContext, spec) -> dict:
    """Budget search on the current model; the most accurate candidate within the budget becomes `pruned`."""
    from edgeprune.executor import get_executor
    from edgeprune.strategies.search import budget_search
    from edgeprune.strategies.trialio import fresh_model_file

    model = current_model(ctx)
    res = budget_search(model, ctx.dataset, device=spec.device, budget=dict(spec.budget), max_drop=spec.max_drop,
                        run_dir=ctx.run_dir, executor=get_executor(spec.executor, address=spec.ray_address),
                        criterion=spec.criterion, round_to=spec.round_to, ratios=spec.ratios,
                        use_sensitivity=spec.sensitivity, quant=spec.quant, finetune_epochs=spec.finetune_epochs,
                        max_train_samples=spec.max_train_samples, runs=spec.runs, protect=spec.protect,
                        protect_first=spec.protect_first, seed=ctx.recipe.seed)
    (metric, limit), = spec.budget.items()
    if res.best is None:
        raise EdgepruneError(f"search: no candidate met {metric} ≤ {limit:g} on {spec.device} "
                             f"(largest ratio tried {max(spec.ratios)}; trials in {ctx.run_dir / 'search'})",
                             "add larger ratios, loosen the budget, or set quant: int8")
    best = fresh_model_file(ctx.run_dir / res.best["model_path"])
    plan_file = ctx.run_dir / "search" / f"plan-{res.best['trial']:03d}.json"
    if plan_file.exists():  # the removed-channels table of the report reads plan.json
        shutil.copyfile(plan_file, ctx.path("plan.json"))
    before_stage = ctx.current_stage
    save_stage_model(ctx, "pruned", best)
    ctx.current_stage = "pruned"
    weights_path = write_weight_histograms(ctx, before_stage, model, best)
    b = res.best
    search = {"status": res.status, "summary_path": "search/summary.json", "budget": {metric: limit},
              "device": spec.device, "best_trial": b["trial"], "best_ratio": b["settings"]["ratio"],
              "best_measured": b["measured"], "trials": len(res.trials)}
    if res.status != "ok":
        search["warning"] = (f"the best model within the budget loses {b['measured']['accuracy_drop_points']:.2f} "
                             f"validation points (> max_drop {spec.max_drop:g}); fine-tuning follows")
        ctx.log(f"warning: {search['warning']}")
    result = {"kind": "search", "search": search, "weights_path": weights_path}
    if spec.sensitivity:
        result["sensitivity_path"] = "sensitivity.json"
    return result | {"stage": "pruned", "stage_metrics": stage_metrics(ctx, "pruned", best)}


def _teacher(ctx: RunContext):
    return load_stage_model(ctx, "baseline")


def step_finetune(ctx: RunContext, spec) -> dict:
    from edgeprune.train import fit

    model = current_model(ctx)
    teacher = _teacher(ctx) if spec.distill else None
    d = spec.distill
    fr = fit(model, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
             patience=spec.patience, teacher=teacher, temperature=d.temperature if d else 4.0,
             alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed, lr_schedule=spec.lr_schedule)
    save_stage_model(ctx, "finetuned", model)
    ctx.current_stage = "finetuned"
    return {"kind": "finetune", "history": fr.history, "distill": bool(d), "stage": "finetuned",
            "stage_metrics": stage_metrics(ctx, "finetuned", model)}


def step_quantize(ctx: RunContext, spec) -> dict:
    if spec.mode == "ptq":
        return {"kind": "quantize", "mode": "ptq", "ptq": _ptq_settings(spec)}
    from edgeprune.quantize.qat import quantize_qat
    from edgeprune.train import fit

    float_model = current_model(ctx)
    qat = quantize_qat(float_model, skip_layers=spec.skip_layers, scheme=spec.scheme)
    history = {}
    if spec.epochs:
        d = spec.distill
        fr = fit(qat, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                 patience=0, teacher=_teacher(ctx) if d else None, temperature=d.temperature if d else 4.0,
                 alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed)
        history = fr.history
    save_stage_model(ctx, "qat", qat)
    ctx.current_stage = "qat"
    return {"kind": "quantize", "mode": "qat", "history": history, "stage": "qat", "ptq": _ptq_settings(spec),
            "stage_metrics": stage_metrics(ctx, "qat", qat)}


def _ptq_settings(spec) -> dict:
    return {"int8_io": spec.int8_io, "calibration_samples": spec.calibration_samples}


def export_targets(ctx: RunContext, spec) -> list[tuple[str, str]]:
    """(stage, quant) pairs: each float stage as float, the latest float stage also PTQ'd if asked, QAT as int8."""
    if spec.stages:
        unknown = [s for s in spec.stages if s not in ctx.metrics["stages"]]
        if unknown:
            raise EdgepruneError(f"export.stages names {unknown}, which this run has not produced",
                                 f"use stages from {sorted(ctx.metrics['stages'])}")
        return [(s, q) for s, qs in spec.stages.items() for q in qs]
    stages = ctx.metrics["stages"]
    targets = [("baseline", "none")]
    last_float = _float_parent(ctx)
    if last_float != "baseline":
        targets.append((last_float, "none"))
    if "qat" in stages:
        targets.append(("qat", "int8"))
    elif ctx.ptq is not None:
        targets.append((last_float, "int8"))
    return targets


def step_export(ctx: RunContext, spec) -> dict:
    from edgeprune.export.parity import assert_parity, check_parity
    from edgeprune.export.targets import ExportOptions, get_target

    if ctx.current_stage is None:  # a recipe that only quantizes and exports a given model
        current_model(ctx)
    ds = ctx.dataset
    x, y = ds.x_test, ds.y_test
    ptq = ctx.ptq or {}
    calib = ds.calibration_samples(ptq.get("calibration_samples", 200), seed=ctx.recipe.seed)
    rows = []
    for stage, quant in export_targets(ctx, spec):
        model = load_stage_model(ctx, stage)
        for fmt in spec.formats:
            target, q = get_target(fmt), quant
            if q not in target.precisions:
                continue  # e.g. onnx covers float and int8 (QDQ), not fp16/dynamic
            rel = f"exports/{stage}-{q}{target.suffix}"
            path = ctx.path(rel)
            t = time.perf_counter()
            options = ExportOptions(int8_io=bool(ptq.get("int8_io")) and q == "int8", opset=spec.opset)
            target.write(model, path, quant=q, options=options,
                         calibration=calib if target.needs_calibration(q, qat=stage == "qat") else None)
            parity = check_parity(path, model, x, y, tolerance=spec.parity_tolerance)
            parity.pop("file", None)
            rows.append({"stage": stage, "format": fmt, "quant": q, "path": rel, "export_seconds": round(time.perf_counter() - t, 2), **parity})
            ctx.log(f"      {rel}: {parity['file_bytes']:,} B, test acc {parity['accuracy']:.4f}, "
                    f"agreement {parity['top1_agreement']:.4f}, max|Δ| {parity['max_abs_diff']:.2e}")
            assert_parity(parity)
    return {"kind": "export", "exports": rows}


def step_benchmark(ctx: RunContext, spec) -> dict:
    from edgeprune.errors import DeviceError
    from edgeprune.harness.backends import backend_for, run_on_device
    from edgeprune.harness.bench import write_eval_npz
    from edgeprune.harness.profiles import get_profile

    exports = ctx.metrics.get("exports") or []
    if not exports:
        raise EdgepruneError("benchmark step has nothing to measure", "put an export step before it")
    devices = ctx.devices or spec.devices
    profiles = [get_profile(d) for d in devices]
    ds = ctx.dataset
    rows, skipped = [], []
    (ctx.run_dir / "bench").mkdir(exist_ok=True)
    for profile in profiles:
        emulated = profile.emulated
        n_eval = spec.emulated_eval_samples if emulated else spec.eval_samples
        runs = spec.emulated_runs if emulated else spec.runs
        eval_npz = write_eval_npz(ds.x_test[:n_eval], ds.y_test[:n_eval], ctx.run_dir / "bench" / f"eval-{n_eval}.npz") if n_eval else None
        try:
            backend_for(profile).ready(profile)
        except DeviceError as e:
            if not spec.skip_unavailable:
                raise
            skipped.append({"device": profile.name, "reason": str(e)})
            ctx.log(f"      skipped {profile.name}: {e}")
            continue
        for exp in exports:
            raw = run_on_device(profile, ctx.path(exp["path"]), eval_npz=eval_npz, runs=runs, warmup=spec.warmup)
            raw_rel = f"bench/{Path(exp['path']).name}@{profile.name}.json"
            import json

            ctx.path(raw_rel).write_text(json.dumps(raw, indent=1))
            lat = raw.get("latency_ms", {})
            row = {
                "export": exp["path"], "stage": exp["stage"], "format": exp["format"], "quant": exp["quant"],
                "device": profile.name, "emulated": bool(raw.get("emulated", emulated)), "cpu": raw.get("cpu") or profile.cpu,
                "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean")},
                "init_ms": raw.get("init_ms"), "first_inference_ms": raw.get("first_inference_ms"),
                "peak_rss_bytes": raw.get("peak_rss_bytes"), "accuracy": raw.get("accuracy"),
                "eval_samples": n_eval, "runs": runs,
                "instructions_per_inference": raw.get("instructions_per_inference"), "raw": raw_rel,
            }
            rows.append(row)
            acc = f"{row['accuracy']:.4f}" if row["accuracy"] is not None else "-"
            ctx.log(f"      {profile.name:<14} {Path(exp['path']).name:<24} p50 {row['latency_ms']['p50']:.3f} ms  acc {acc}")
    return {"kind": "benchmark", "benchmarks": rows, "skipped_devices": skipped}


def step_report(ctx: RunContext, spec) -> dict:
    ctx.write_metrics()
    from edgeprune.report import write_reports

    paths = write_reports(ctx.run_dir, formats=tuple(spec.formats))
    return {"kind": "report", "report_files": [str(Path(p).relative_to(ctx.run_dir)) for p in paths]}


STEPS = {
    "train": step_train,
    "sparsity_train": step_sparsity_train,
    "prune": step_prune,
    "search": step_search,
    "finetune": step_finetune,
    "quantize": step_quantize,
    "export": step_export,
    "benchmark": step_benchmark,
    "report": step_report,
}


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
