"""One function per recipe step.  A step reads what earlier steps wrote into the run directory
and returns a result dict that the runner merges into metrics.json (and caches)."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from edgeprune import progress, rundir, zoo
from edgeprune.data.check import check_fits
from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.export.metadata import write_tflite_metadata
from edgeprune.export.parity import assert_parity, check_parity
from edgeprune.export.precision import plan_mixed
from edgeprune.export.targets import ExportOptions, get_target
from edgeprune.harness.backends import backend_for, run_on_device
from edgeprune.harness.bench import result_line, write_eval_npz
from edgeprune.harness.metric import ship_choice
from edgeprune.harness.profiles import get_profile
from edgeprune.modelio import load_model, read_model, save_model
from edgeprune.profiling.steps import device_cost_prune
from edgeprune.progress import fit_callback
from edgeprune.pruning import model_stats, prune, verify_inputs, verify_pruning
from edgeprune.pruning.histograms import weight_histograms
from edgeprune.pruning.recalibrate import batchnorm_layers, recalibrate_batchnorm
from edgeprune.quantize.qat import load_qat, quantize_qat, save_qat
from edgeprune.recipe.cache import trained_model_cache
from edgeprune.recipe.context import FLOAT_STAGES, NATIVE_QAT_FILE, RunContext, STAGE_FILES
from edgeprune.report import write_reports
from edgeprune.rundir import WEIGHTS_FILE, WeightsFile
from edgeprune.strategies.schedule import gradual_prune
from edgeprune.strategies.search import budget_search
from edgeprune.strategies.sensitivity import sensitivity_overrides, sensitivity_scan
from edgeprune.strategies.sparsity import sparsity_train
from edgeprune.strategies.trialio import fresh_model_file
from edgeprune.train import evaluate, fit


# ---------------------------------------------------------------------------------------------
# models in and out of the run directory


def load_stage_model(ctx: RunContext, stage: str):
    if stage == "qat" and ctx.stage_path(stage) == ctx.path(NATIVE_QAT_FILE):
        from edgeprune.quantize.native_qat import load_native

        return load_native(ctx.stage_path(stage))
    if stage == "qat":
        return load_qat(ctx.stage_path(stage))
    return load_model(ctx.stage_path(stage))


def save_stage_model(ctx: RunContext, stage: str, model) -> Path:
    path = ctx.stage_path(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    if stage == "qat":
        from edgeprune.quantize.native_qat import is_native_qat_model, save_native

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
    if ctx.current_stage is None:
        model = initial_model(ctx)
        save_stage_model(ctx, "baseline", model)
        ctx.metrics["stages"]["baseline"] = stage_metrics(ctx, "baseline", model)
        ctx.current_stage = "baseline"
        return model
    return load_stage_model(ctx, ctx.current_stage)


def stage_metrics(ctx: RunContext, stage: str, model) -> dict:
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
    save_stage_model(ctx, "baseline", model)
    ctx.current_stage = "baseline"
    return result | {"stage": "baseline", "stage_metrics": stage_metrics(ctx, "baseline", model)}


def step_sparsity_train(ctx: RunContext, spec) -> dict:
    model = current_model(ctx)
    history = sparsity_train(model, ctx.dataset, epochs=spec.epochs, penalty=spec.penalty, strength=spec.strength,
                             learning_rate=spec.learning_rate, batch_size=spec.batch_size, seed=ctx.recipe.seed,
                             lr_schedule=spec.lr_schedule, callbacks=[fit_callback("sparsity training")])
    save_stage_model(ctx, "sparse", model)
    ctx.current_stage = "sparse"
    return {"kind": "sparsity_train", "history": history, "stage": "sparse", "stage_metrics": stage_metrics(ctx, "sparse", model)}


def step_prune(ctx: RunContext, spec) -> dict:
    model = current_model(ctx)
    ds = ctx.dataset
    kwargs = dict(criterion=spec.criterion, global_pruning=spec.global_pruning, round_to=spec.round_to,
                  min_channels=spec.min_channels, protect=spec.protect, protect_first=spec.protect_first,
                  overrides=dict(spec.overrides), aggregate=spec.aggregate, dataset=ds, seed=ctx.recipe.seed,
                  strict=spec.strict)
    result: dict = {"kind": "prune"}
    if spec.sensitivity:
        scan = sensitivity_scan(model, ds, criterion=spec.criterion, run_dir=ctx.run_dir)
        kwargs["overrides"] = {**sensitivity_overrides(scan, spec.ratio), **kwargs["overrides"]}
        result["sensitivity_path"] = "sensitivity.json"
    if spec.allocation == "device_cost":
        pruned, plan, result["device_cost"] = device_cost_prune(ctx, spec, model)
        steps = []
        if spec.verify:
            x, described = verify_inputs(model, ds, ctx.recipe.dataset.name)
            result["verify"] = verify_pruning(model, pruned, plan, x, inputs=described)
            result["equivalence_max_abs_diff"] = result["verify"]["output_max_abs_diff"]
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
            x, described = verify_inputs(model, ds, ctx.recipe.dataset.name)
            result["verify"] = verify_pruning(model, pruned, plan, x, inputs=described)
            result["equivalence_max_abs_diff"] = result["verify"]["output_max_abs_diff"]
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
    save_stage_model(ctx, "pruned", pruned)
    ctx.current_stage = "pruned"
    result["weights_path"] = write_weight_histograms(ctx, before_stage, model, pruned)
    result["pruning"] = {"plan_path": "plan.json", "ratio": spec.ratio, "criterion": spec.criterion,
                         "schedule": spec.schedule, "removed_channels": plan.removed_channels, "steps": steps,
                         "kept": plan.kept}
    return result | {"stage": "pruned", "stage_metrics": stage_metrics(ctx, "pruned", pruned)}


def step_search(ctx: RunContext, spec) -> dict:
    """Budget search on the current model; the most accurate candidate within the budget becomes `pruned`."""
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
    model = current_model(ctx)
    teacher = _teacher(ctx) if spec.distill else None
    d = spec.distill
    fr = fit(model, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
             patience=spec.patience, teacher=teacher, temperature=d.temperature if d else 4.0,
             alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed, lr_schedule=spec.lr_schedule,
             callbacks=[fit_callback("fine-tune")])
    save_stage_model(ctx, "finetuned", model)
    ctx.current_stage = "finetuned"
    return {"kind": "finetune", "history": fr.history, "distill": bool(d), "stage": "finetuned",
            "stage_metrics": stage_metrics(ctx, "finetuned", model)}


def step_quantize(ctx: RunContext, spec) -> dict:
    if spec.mode == "ptq":
        return {"kind": "quantize", "mode": "ptq", "ptq": _ptq_settings(spec)}
    float_model = current_model(ctx)
    if spec.backend == "native":
        return _native_qat(ctx, spec, float_model)
    qat = quantize_qat(float_model, skip_layers=spec.skip_layers, scheme=spec.scheme)
    history = {}
    if spec.epochs:
        d = spec.distill
        fr = fit(qat, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                 patience=0, teacher=_teacher(ctx) if d else None, temperature=d.temperature if d else 4.0,
                 alpha=d.alpha if d else 0.5, seed=ctx.recipe.seed, callbacks=[fit_callback("QAT")])
        history = fr.history
    save_stage_model(ctx, "qat", qat)
    ctx.current_stage = "qat"
    return {"kind": "quantize", "mode": "qat", "history": history, "stage": "qat", "ptq": _ptq_settings(spec),
            "stage_metrics": stage_metrics(ctx, "qat", qat)}


def _native_qat(ctx: RunContext, spec, float_model) -> dict:
    """quantize {mode: qat, backend: native}: the float stage carried to Keras 3, quantization-aware
    layers of edgeprune's own (no tfmot), fine-tuned with Keras 3's fit, saved as models/qat.keras."""
    import keras

    from edgeprune.losses import output_kind
    from edgeprune.modelio.tfkeras_to_keras3 import to_keras3
    from edgeprune.quantize.native_qat import fine_tune_native, quantize_native

    qat = quantize_native(to_keras3(float_model), skip_layers=spec.skip_layers)
    history = {}
    if spec.epochs:
        history = fine_tune_native(qat, ctx.dataset, epochs=spec.epochs, learning_rate=spec.learning_rate,
                                   batch_size=spec.batch_size, from_logits=output_kind(float_model) == "logits",
                                   seed=ctx.recipe.seed, callbacks=[fit_callback("QAT", keras=keras)])
    save_stage_model(ctx, "qat", qat)
    ctx.current_stage = "qat"
    return {"kind": "quantize", "mode": "qat", "backend": "native", "history": history, "stage": "qat",
            "ptq": _ptq_settings(spec), "stage_metrics": stage_metrics(ctx, "qat", qat)}


def _ptq_settings(spec) -> dict:
    return {"int8_io": spec.int8_io, "calibration_samples": spec.calibration_samples}


AUTO_PRECISIONS = ("none", "fp16", "int8", "mixed")


def export_targets(ctx: RunContext, spec) -> list[tuple[str, str]]:
    """(stage, quant) pairs: each float stage as float, the latest float stage also PTQ'd if asked, QAT as int8.

    With `precision`, the shipped stages instead: the float baseline as reference, the latest float
    stage in every asked precision, and the QAT stage as int8."""
    if spec.stages:
        if spec.precision is not None:
            raise EdgepruneError("export gives both stages and precision", "use precision (the shipped stage) or stages")
        unknown = [s for s in spec.stages if s not in ctx.metrics["stages"]]
        if unknown:
            raise EdgepruneError(f"export.stages names {unknown}, which this run has not produced",
                                 f"use stages from {sorted(ctx.metrics['stages'])}")
        return [(s, q) for s, qs in spec.stages.items() for q in qs]
    stages = ctx.metrics["stages"]
    last_float = _float_parent(ctx)
    if spec.precision is not None:
        precisions = AUTO_PRECISIONS if spec.precision == "auto" else spec.precision
        targets = [("baseline", "none")] + [(last_float, q) for q in precisions if (last_float, q) != ("baseline", "none")]
        return targets + ([("qat", "int8")] if "qat" in stages and "int8" in precisions else [])
    targets = [("baseline", "none")]
    if last_float != "baseline":
        targets.append((last_float, "none"))
    if "qat" in stages:
        targets.append(("qat", "int8"))
    elif ctx.ptq is not None:
        targets.append((last_float, "int8"))
    return targets


def _precision_devices(ctx: RunContext, spec) -> list[str]:
    """Where per-device precision is decided: export.devices, else --device, else the benchmark step's devices."""
    if spec.devices:
        return spec.devices
    if ctx.devices:
        return ctx.devices
    bench = [s for kind, s in ctx.recipe.step_specs() if kind == "benchmark"]
    return bench[0].devices if bench else ["host"]


def _mixed_files(ctx: RunContext, spec, model, calib) -> list[dict]:
    """{keep_float, devices (None: every device), tables} per mixed file to write."""
    if spec.keep_float:
        return [{"keep_float": list(spec.keep_float), "devices": None, "tables": {}}]
    devices = []
    for device in _precision_devices(ctx, spec):
        try:
            _check_device_ready(device)
            devices.append(device)
        except DeviceError as e:
            ctx.log(f"      no mixed file for {device}: {e}")
    return plan_mixed(model, devices, calib, log=ctx.log)


def _check_device_ready(device: str) -> None:
    profile = get_profile(device)
    backend_for(profile).ready(profile)


def _mixed_name(stage: str, keep: list[str]) -> str:
    tag = "_".join(keep) if len(keep) <= 3 else f"{len(keep)}layers-{hashlib.sha1(','.join(keep).encode()).hexdigest()[:6]}"
    return f"{stage}-mixed-{tag}"


def step_export(ctx: RunContext, spec) -> dict:
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
                continue  # e.g. onnx covers float and int8 (QDQ), not fp16/dynamic/mixed
            files = [{"name": f"{stage}-{q}", "keep_float": (), "extra": {}}]
            if q == "mixed":
                files = [{"name": _mixed_name(stage, m["keep_float"]), "keep_float": tuple(m["keep_float"]),
                          "extra": {"keep_float": m["keep_float"], "devices": m["devices"], "layer_costs": m["tables"]}}
                         for m in _mixed_files(ctx, spec, model, calib)]
            for f in files:
                rel = f"exports/{f['name']}{target.suffix}"
                path = ctx.path(rel)
                t = time.perf_counter()
                options = ExportOptions(int8_io=bool(ptq.get("int8_io")) and q == "int8", opset=spec.opset,
                                        keep_float=f["keep_float"])
                target.write(model, path, quant=q, options=options,
                             calibration=calib if target.needs_calibration(q, qat=stage == "qat") else None)
                parity = check_parity(path, model, x, y, tolerance=spec.parity_tolerance)
                parity.pop("file", None)
                sidecars = _sidecars(path, target, model, ds)
                rows.append({"stage": stage, "format": fmt, "quant": q, "path": rel,
                             "export_seconds": round(time.perf_counter() - t, 2), **parity, **f["extra"],
                             "sidecars": [str(p.relative_to(ctx.run_dir)) for p in sidecars]})
                ctx.log(f"      {rel}: {parity['file_bytes']:,} B, test acc {parity['accuracy']:.4f}, "
                        f"agreement {parity['top1_agreement']:.4f}, max|Δ| {parity['max_abs_diff']:.2e}")
                assert_parity(parity)
    result = {"kind": "export", "exports": rows}
    if spec.precision is not None:
        shipped = [_float_parent(ctx)] + (["qat"] if "qat" in ctx.metrics["stages"] else [])
        result["precision"] = {"mode": "auto" if spec.precision == "auto" else "list", "stages": shipped,
                               "max_accuracy_drop": spec.max_accuracy_drop}
    return result


def _sidecars(path: Path, target, model, dataset) -> list[Path]:
    """Files an app needs beside the model: what the target wrote (the ORT operators config), and for
    TFLite the metadata and labels from the dataset (edgeprune.export.metadata)."""
    files = list(target.sidecars(path))
    if target.name == "tflite":
        written = write_tflite_metadata(path, model, dataset)
        files += [p for p in (written["metadata"], written["labels"]) if p is not None]
    return files


def step_benchmark(ctx: RunContext, spec) -> dict:
    exports = ctx.metrics.get("exports") or []
    if not exports:
        raise EdgepruneError("benchmark step has nothing to measure", "put an export step before it")
    devices = ctx.devices or spec.devices
    profiles = [get_profile(d) for d in devices]
    ds = ctx.dataset
    rows, skipped = [], []
    (ctx.run_dir / "bench").mkdir(exist_ok=True)
    shown = progress.open_task("benchmark", total=len(profiles) * len(exports))
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
            shown.update(advance=len(exports))
            continue
        for exp in exports:
            if exp.get("devices") is not None and profile.name not in exp["devices"]:
                continue  # a mixed file chosen for other devices
            raw = run_on_device(profile, ctx.path(exp["path"]), eval_npz=eval_npz, runs=runs, warmup=spec.warmup)
            raw_rel = f"bench/{Path(exp['path']).name}@{profile.name}.json"
            ctx.path(raw_rel).write_text(json.dumps(raw, indent=1))
            lat = raw.get("latency_ms", {})
            row = {
                "export": exp["path"], "stage": exp["stage"], "format": exp["format"], "quant": exp["quant"],
                "device": profile.name, "emulated": bool(raw.get("emulated", emulated)), "cpu": raw.get("cpu") or profile.cpu,
                "arch": profile.arch, "stands_for": profile.stands_for,
                "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean")},
                "init_ms": raw.get("init_ms"), "first_inference_ms": raw.get("first_inference_ms"),
                "peak_rss_bytes": raw.get("peak_rss_bytes"), "accuracy": raw.get("accuracy"),
                "eval_samples": n_eval, "runs": raw.get("runs", runs),
                "instructions_per_inference": raw.get("instructions_per_inference"), "raw": raw_rel,
                "board_time_ms": raw.get("board_time_ms"), "board_time": raw.get("board_time"),
                "emulator_ms": raw.get("emulator_ms"),
            }
            rows.append(row)
            shown.report(result_line(raw), advance=1)
    progress.close_task(shown)
    _mark_shipped(ctx, rows)
    return {"kind": "benchmark", "benchmarks": rows, "skipped_devices": skipped}


def _mark_shipped(ctx: RunContext, rows: list[dict]) -> None:
    """After precision: auto, flag per device the file it keeps (the report recommends the same one)."""
    precision = ctx.metrics.get("precision") or {}
    if precision.get("mode") != "auto":
        return
    accuracy = {e["path"]: e.get("accuracy") for e in ctx.metrics.get("exports") or []}
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device and r["stage"] in precision["stages"]]
        pick = ship_choice([{**r, "test_accuracy": accuracy.get(r["export"])} for r in mine],
                           precision["max_accuracy_drop"] / 100)
        if pick is not None:
            mine[pick]["shipped"] = True
            ctx.log(f"      {device}: precision auto keeps {mine[pick]['export']}")


def step_report(ctx: RunContext, spec) -> dict:
    ctx.write_metrics()
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
