"""Bench trials: each runs product recipes into its own run directory and writes one result JSON.

Trials take and return paths (no live objects), so they run unchanged through edgeprune's executor
in this process or on Ray. The numbers come from the product's own report of each run
(:func:`edgeprune.report.build_report`): its rows (one per exported file and device) and its
"which file to ship" per device.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from edgeprune import fileio
from edgeprune.bench_suite.suite import epochs_after_training, train_step
from edgeprune.recipe.lock import holds_other_recipe
from edgeprune.recipe.schema import Recipe, load_recipe
from edgeprune.report import build_report

RESULT = "bench-result.json"


def _write_json(path: Path, data: dict) -> str:
    return str(fileio.write_json(path, data))


def shrink(recipe: dict, quick: dict | None) -> dict:
    """The recipe on less data and fewer timed runs (a smoke run); epochs are left alone."""
    if not quick:
        return recipe
    out = json.loads(json.dumps(recipe))
    ds = out.setdefault("dataset", {})
    for key in ("max_train_samples", "test_samples"):
        if quick.get(key):
            ds[key] = min(ds.get(key) or quick[key], quick[key])
    for step in out["steps"]:
        (kind, spec), = step.items()
        if kind == "benchmark" and spec is not None:
            for key in ("runs", "emulated_runs", "eval_samples", "emulated_eval_samples"):
                if key in quick:
                    spec[key] = min(spec.get(key, quick[key]), quick[key])
    return out


def write_recipe(data: dict, path: Path) -> Path:
    """A recipe file the normal schema validates (so a bench variant is a recipe a user could run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_recipe(path)
    return path


def finished(run_dir: Path, recipe_path: Path) -> bool:
    """The run directory holds a finished run of this recipe: every step recorded in its metrics.json.

    Run directories are named by the recipe file's content (see :mod:`.run`), so a finished one is
    this recipe's run even when a newer edgeprune resolves the recipe with more default keys (which
    `edgeprune run` would take for a different recipe)."""
    metrics = run_dir / "metrics.json"
    if not metrics.exists() or holds_other_recipe(run_dir, recipe_path):  # an edited recipe runs again
        return False
    done = [s["name"] for s in json.loads(metrics.read_text()).get("steps", [])]
    return done == [kind for kind, _ in load_recipe(recipe_path).step_specs()]


def _run(recipe_path: Path, run_dir: Path, devices, log) -> dict:
    # the recipe runner loads TensorFlow: only in the trial's own process, not at bench start
    from edgeprune.recipe.runner import run_recipe

    if finished(run_dir, recipe_path):
        log(f"reusing the finished run in {run_dir}")
    else:
        run_recipe(recipe_path, out_dir=run_dir, devices=list(devices) if devices else None, log=log)
    report = build_report(run_dir, weights=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"run_dir": str(run_dir), "recipe": report["recipe"], "rows": report["rows"],
            "recommendations": report["recommendations"], "skipped_devices": report["skipped_devices"],
            "stages": {s["stage"]: {k: s.get(k) for k in ("params", "macs", "test_accuracy", "file_bytes")}
                       for s in report["stages"]},
            "steps": [{k: s.get(k) for k in ("name", "status", "seconds", "reused_from")} for s in metrics["steps"]],
            "train_history": (metrics["steps"][0].get("history") or {}) if metrics["steps"] else {},
            "device_cost": next((s["device_cost"] for s in metrics["steps"] if s.get("device_cost")), None),
            "seconds": metrics["run"].get("seconds")}


def _logger(run_dir: Path, quiet: bool):
    log_path = run_dir.parent / f"{run_dir.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        with log_path.open("a") as f:
            f.write(f"{msg}\n")
        if not quiet:
            print(f"[{run_dir.name}] {msg}", flush=True)

    return log


def recipe_trial(recipe: str, run_dir: str, devices: list[str] | None = None, quick: dict | None = None,
                 quiet: bool = False) -> str:
    """`edgeprune run RECIPE` into `run_dir`; writes `<run_dir>/bench-result.json`, returns its path."""
    run_dir = Path(run_dir)
    path = Path(recipe)
    if quick:
        data = shrink(yaml.safe_load(path.read_text()), quick)
        path = write_recipe(data, run_dir.parent / f"{run_dir.name}.recipe.yaml")
    result = _run(path, run_dir, devices, _logger(run_dir, quiet))
    return _write_json(run_dir / RESULT, {"kind": "recipe", "recipe_path": str(recipe), **result})


def tfmot_trial(reference_run: str, sparsity: float, learning_rate: float, run_dir: str,
                devices: list[str] | None = None, quiet: bool = False) -> str:
    """TF-MOT magnitude pruning of the reference run's trained baseline, for the reference's epoch budget,
    then the product's PTQ, export and benchmark steps on the pruned model file."""
    # TensorFlow loads in the trial's own process (a Ray worker, or here when in-process), not at bench start
    from edgeprune.bench_suite.tfmot import magnitude_prune, weight_sparsity
    from edgeprune.keras import keras
    from edgeprune.modelio import load_model, save_model
    from edgeprune.recipe.runner import recipe_dataset

    reference_run, run_dir = Path(reference_run), Path(run_dir)
    lock = yaml.safe_load((reference_run / "recipe.lock.yaml").read_text())["recipe"]
    lock.pop("devices_override", None)
    ref = Recipe.model_validate(lock)
    epochs, batch_size = epochs_after_training(ref), train_step(ref).batch_size
    model_file = run_dir.parent / f"{run_dir.name}.keras"
    log = _logger(run_dir, quiet)
    if not model_file.exists():
        keras.backend.clear_session()
        log(f"TF-MOT prune_low_magnitude to {sparsity:g} sparsity, {epochs} epochs, on {reference_run}/models/baseline.keras")
        model = load_model(reference_run / "models" / "baseline.keras")
        stripped, description = magnitude_prune(model, recipe_dataset(ref), sparsity=sparsity, epochs=epochs,
                                                learning_rate=learning_rate, batch_size=batch_size, seed=ref.seed)
        save_model(stripped, model_file)
        model_file.with_suffix(".json").write_text(json.dumps({"description": description,
                                                               "weight_sparsity": weight_sparsity(stripped)}))
    info = json.loads(model_file.with_suffix(".json").read_text())
    # the reference recipe's PTQ, export and benchmark settings, on the pruned file
    kept = {kind: spec for step in lock["steps"] for kind, spec in step.items() if kind in ("quantize", "benchmark")}
    recipe = {"name": f"{ref.name}-tfmot-{round(sparsity * 100)}",
              "description": f"TF-MOT magnitude pruning ({info['description']}) of {ref.name}'s baseline, PTQ int8",
              "seed": ref.seed, "model": str(model_file.resolve()), "dataset": lock["dataset"],
              "steps": [{"quantize": {"mode": "ptq", "calibration_samples": kept.get("quantize", {}).get("calibration_samples", 200)}},
                        {"export": {"formats": ["tflite"], "stages": {"baseline": ["int8"]}}},
                        {"benchmark": kept["benchmark"]}]}
    path = write_recipe(recipe, run_dir.parent / f"{run_dir.name}.recipe.yaml")
    result = _run(path, run_dir, devices, log)
    return _write_json(run_dir / RESULT, {"kind": "tfmot", "sparsity": sparsity, "epochs": epochs, **info, **result})
