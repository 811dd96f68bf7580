"""`edgeprune run`: execute a recipe into one run directory, step by step, caching each step."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import signal
import time
from importlib import metadata
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgeprune import fileio, progress, zoo
from edgeprune.data import load_dataset
from edgeprune.errors import EdgepruneError, Interrupted, RecipeError
from edgeprune.modelio.detect import detect
from edgeprune.recipe.cache import root_key, step_key
from edgeprune.harness.backends import backend_for
from edgeprune.harness.profiles import get_profile
from edgeprune.recipe.context import RunContext
from edgeprune.recipe.lock import LOCK_FILE, resolved_recipe, same_recipe
from edgeprune.recipe.plan_check import device_problems, layer_keys_set, layer_problems
from edgeprune.recipe.schema import check_model_file, load_recipe, located_problems
from edgeprune.recipe.steps import FLOAT_STAGES, STAGE_FILES, STEPS, step_result
from edgeprune.recipe.steps.stages import initial_model
from edgeprune.rundir import METRICS_SCHEMA_VERSION, StageMetrics, StepResult

STATE_DIR = ".state"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist, key in [("edgeprune", "edgeprune"), ("tensorflow", "tensorflow"), ("tf-keras", "tf_keras"),
                      ("tensorflow-model-optimization", "tfmot"), ("tf2onnx", "tf2onnx"), ("onnx", "onnx"),
                      ("onnxruntime", "onnxruntime"), ("ai-edge-litert", "ai_edge_litert"), ("numpy", "numpy"),
                      ("keras", "keras")]:
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def environment() -> dict:
    return {**versions(), "machine": platform.machine(), "system": platform.system(),
            "cpu_count": os.cpu_count(), "hostname": platform.node()}


MARKER = ".edgeprune-run"
# everything a run writes at the top of its directory; --overwrite removes these and nothing else
RUN_ENTRIES = (MARKER, LOCK_FILE, "metrics.json", "metrics.json.tmp", STATE_DIR, "models", "exports", "bench",
               "plans", "plan.json", "sensitivity", "sensitivity.json", "search", "weights.json", "profile.json",
               "report.json", "report.md",
               "report.html")


def prepare_run_dir(run_dir: Path, lock_recipe: dict, overwrite: bool) -> None:
    """Resume the same recipe; refuse to mix two recipes; never delete a folder edgeprune did not create.

    A run directory holds a marker file (``.edgeprune-run``) written when edgeprune created it.
    ``overwrite`` clears only a marked directory, and only the entries a run writes (``RUN_ENTRIES``):
    anything else a user put there stays.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgepruneError(f"run directory {run_dir} is a file", "pass --out with a folder name")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        marked = (run_dir / MARKER).is_file()
        lock = run_dir / LOCK_FILE
        if not marked:
            raise EdgepruneError(f"{run_dir} exists and holds no edgeprune run, so it is left alone"
                                 f"{' (even with --overwrite)' if overwrite else ''}",
                                 "pass --out with a new or empty folder")
        if overwrite:
            clear_run_dir(run_dir)
        elif lock.exists():
            previous = yaml.safe_load(lock.read_text()) or {}
            if not same_recipe(previous.get("recipe"), lock_recipe):
                raise EdgepruneError(f"run directory {run_dir} holds a run of a different recipe",
                                     "pass --out NEW_DIR, or --overwrite to replace that run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / MARKER).is_file():
            (run_dir / MARKER).write_text(json.dumps({"tool": "edgeprune", "version": versions()["edgeprune"],
                                                      "created": dt.datetime.now().isoformat(timespec="seconds")}))
    except OSError as e:
        raise EdgepruneError(f"cannot create run directory {run_dir}: {e.strerror}",
                             "pass --out with a folder you can write to") from None


def clear_run_dir(run_dir: Path) -> None:
    """Remove what a run wrote into `run_dir` (the marker last), keeping anything else."""
    for name in (*RUN_ENTRIES[1:], MARKER):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def run_recipe(recipe_path, *, out_dir=None, model: str | None = None, devices: list[str] | None = None,
               overwrite: bool = False, log=print) -> Path:
    """Run every step of the recipe; returns the run directory.

    An interrupt (Ctrl-C, or SIGTERM through the CLI) becomes :class:`Interrupted` naming the step;
    finished steps are cached, so the same command resumes from the interrupted one.
    """
    recipe = load_recipe(recipe_path)
    if model:
        recipe.model = model
    _check_model_source(recipe.model)
    run_dir = Path(out_dir) if out_dir else Path("runs") / recipe.name
    lock_recipe = resolved_recipe(recipe)
    if devices:
        lock_recipe["devices_override"] = list(devices)
    _check_devices(recipe, devices)
    fresh = not run_dir.exists()
    prepare_run_dir(run_dir, lock_recipe, overwrite)

    where = ["setup (loading the dataset and model)"]  # the step a Ctrl-C would interrupt
    try:
        with progress.task(f"run {recipe.name}", total=len(recipe.step_specs())) as shown:
            return _run(recipe, recipe_path, run_dir, lock_recipe, devices, log, where, shown)
    except (KeyboardInterrupt, Interrupted) as e:
        raise Interrupted(e.signum if isinstance(e, Interrupted) else signal.SIGINT, step=where[0]) from None
    except Exception as e:
        lost = Interrupted.lost_in(e, step=where[0])  # a signal whose exception C code turned into another error
        if lost is not None:
            raise lost from None
        if isinstance(e, RecipeError) and fresh and {p.name for p in run_dir.iterdir()} <= {MARKER}:
            shutil.rmtree(run_dir)  # refused before any work: leave no empty run folder behind
        raise


def _run(recipe, recipe_path, run_dir: Path, lock_recipe: dict, devices, log, where: list, shown) -> Path:
    started = time.perf_counter()
    log(f"edgeprune run {recipe.name}: model {recipe.model}, dataset {recipe.dataset.name} → {run_dir}")
    ds = recipe_dataset(recipe)
    log(f"  dataset {ds.name}: {len(ds.x_train)} train / {len(ds.x_val)} val / {len(ds.x_test)} test ({ds.source}); "
        f"inputs: {ds.describe_scaling()}")
    ctx = RunContext(recipe=recipe, run_dir=run_dir, dataset=ds, model_source=recipe.model, devices=devices, log=log,
                     stage_files=STAGE_FILES, float_stages=FLOAT_STAGES)
    if not _is_zoo(recipe.model):
        ctx.model_flavor = detect(Path(recipe.model)).flavor  # give results back in the user's Keras
    _check_layer_names(recipe, recipe_path, ctx)
    ctx.metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run": {"name": recipe.name, "recipe_path": str(recipe_path), "started": dt.datetime.now().isoformat(timespec="seconds")},
        "environment": environment(),
        "seed": recipe.seed,
        "dataset": {"name": ds.name, "train": len(ds.x_train), "val": len(ds.x_val), "test": len(ds.x_test),
                    "source": ds.source, "fingerprint": ds.fingerprint(), "scaling": ds.scaling or "none",
                    "inputs": ds.describe_scaling()},
        "stages": {}, "steps": [], "exports": [], "benchmarks": [],
    }
    lock = {"recipe": lock_recipe, "versions": versions(), "seed": recipe.seed, "dataset_fingerprint": ds.fingerprint()}
    (run_dir / LOCK_FILE).write_text(yaml.safe_dump(lock, sort_keys=False))

    key = root_key(ctx)
    state_dir = run_dir / STATE_DIR
    state_dir.mkdir(exist_ok=True)
    specs = recipe.step_specs()
    for i, (kind, spec) in enumerate(specs, start=1):
        key = step_key(key, kind, spec, extra=STEPS[kind].cache_extra(spec, specs, devices))
        state_file = state_dir / f"{i:02d}-{kind}.json"
        t = time.perf_counter()
        where[0] = f"{i}/{len(specs)} ({kind})"
        shown.update(completed=i - 1, note=f"step {i}/{len(specs)}: {kind}")
        cached = _load_state(state_file, key, run_dir)
        if cached is not None and kind != "report":
            result, status = cached, "cached"
            log(f"[{i}/{len(specs)}] {kind}: cached")
        else:
            log(f"[{i}/{len(specs)}] {kind} ...")
            result, status = step_result(STEPS[kind].run(ctx, spec)), "done"
        result.merge(ctx)
        seconds = round(time.perf_counter() - t, 2)
        ctx.metrics["steps"].append({"name": kind, "index": i, "status": status, "seconds": seconds, **result.record()})
        if status == "done":
            _save_state(state_file, key, result)
            if result.stage:
                log(_stage_line(result.stage, result.stage_metrics, seconds))
        ctx.metrics["run"]["seconds"] = round(time.perf_counter() - started, 1)
        ctx.write_metrics()
    where[0] = "finishing the run"
    progress.close_task(shown)  # the live rows go before the last line, not left above it
    log(f"done in {ctx.metrics['run']['seconds']:.0f} s: {run_dir}")
    return run_dir


def _check_devices(recipe, devices) -> None:
    """Before anything is written or trained: every device the benchmark will use is known and can be
    reached as configured (an SSH board has a host); one that needs a long set-up (the emulated board
    not built) stops the run here unless the benchmark step may skip it."""
    problems = device_problems(devices or [])
    if problems:
        raise EdgepruneError(f"--device: {'; '.join(problems)}", "use a device `edgeprune devices` lists")
    for spec in (s for k, s in recipe.step_specs() if k == "benchmark"):
        for name in devices or spec.devices:
            profile = get_profile(name)
            backend = backend_for(profile)
            backend.check(profile, None)
            if not spec.skip_unavailable:
                backend.ready(profile)


def _check_layer_names(recipe, recipe_path, ctx) -> None:
    """Before any step runs: every layer name or pattern in the steps' settings names a layer of the model."""
    specs = recipe.step_specs()
    if not layer_keys_set(specs):
        return
    problems = layer_problems(specs, initial_model(ctx))
    if problems:
        raise located_problems(recipe_path, problems)


def recipe_dataset(recipe):
    """The dataset a recipe names, split and limited as it says."""
    ds = load_dataset(recipe.dataset.name, val_fraction=recipe.dataset.val_fraction, seed=recipe.seed,
                      scaling=recipe.dataset.scaling)
    return ds.subset(train=recipe.dataset.max_train_samples, test=recipe.dataset.test_samples)


def _is_zoo(source: str) -> bool:
    return source in zoo.MODELS


def _check_model_source(source: str) -> None:
    check_model_file(source)
    if Path(source).exists() or _is_zoo(source):
        return
    raise EdgepruneError(f"model '{source}' is neither a zoo model nor an existing file",
                         f"use one of {', '.join(sorted(zoo.MODELS))} or a path to a .keras/.h5/SavedModel")


def _stage_line(stage: str, m: StageMetrics, seconds: float) -> str:
    count = lambda v: "?" if v is None else f"{v:,}"  # noqa: E731
    return (f"      {stage}: {count(m.params)} params, {count(m.macs)} MACs, {m.file_bytes:,} B, "
            f"val {m.val_accuracy:.4f}, test {m.test_accuracy:.4f} ({seconds:.1f} s)")


def _load_state(path: Path, key: str, run_dir: Path) -> StepResult | None:
    """The cached result of this step, if its key matches and its files are still there."""
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if state.get("key") != key:
        return None
    try:
        result = step_result(state["result"])
    except (KeyError, ValidationError):  # written by another edgeprune version: run the step again
        return None
    if not all((run_dir / p).exists() for p in result.artifacts()):
        return None
    return result


def _save_state(path: Path, key: str, result: StepResult) -> None:
    fileio.write_json(path, {"key": key, "result": result.model_dump(mode="json")}, indent=None)
