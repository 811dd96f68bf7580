"""One bench run: the suite's recipes through edgeprune's executor, then the summary JSON and report.

Phase 1 runs each group's reference recipe (its train step trains the shared baseline, or reuses it
from the product's cache); phase 2 runs the edgeprune recipes and the TF-MOT trials, which start
from that baseline. Both phases are lists of independent trials handed to the one executor.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

from edgeprune import fileio
from edgeprune.bench_suite import summary as summ
from edgeprune.bench_suite.layers import layer_cost_trial
from edgeprune.bench_suite.report import write_report
from edgeprune.bench_suite.suite import Suite, check_budget
from edgeprune.bench_suite.trials import recipe_trial, tfmot_trial
from edgeprune.recipe.cache import digest
from edgeprune.recipe.runner import environment

SCHEMA_VERSION = 2
QUICK = {"max_train_samples": 2000, "test_samples": 500, "runs": 20, "emulated_runs": 2, "eval_samples": 0,
         "emulated_eval_samples": 0}


def _environment() -> dict:
    env = {k: v for k, v in environment().items() if v is not None and k != "hostname"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["host_cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return env


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def run_bench(suite: Suite, *, work_dir: Path, out_dir: Path, markdown: Path, command: str, executor,
              quick: bool = False, quiet: bool = False, log=print) -> tuple[Path, Path]:
    """Run the whole suite; returns (summary JSON path, Markdown path)."""
    started = time.perf_counter()
    budgets = check_budget(suite)
    date = _dt.date.today().isoformat()
    work = Path(work_dir).resolve()
    q = QUICK if quick else None
    devices = list(suite.devices)

    def run_dir(g, rel: str) -> str:
        """A run directory per recipe content: an unchanged recipe resumes its run, a changed one starts afresh."""
        path = suite.recipe_path(rel)
        return str(work / g.name / f"{path.stem}-{digest(path.read_text(), q, devices)[:8]}")

    log(f"bench: {len(suite.groups)} group(s) on {', '.join(devices)}; executor {executor.describe()['kind']}; "
        f"work in {work}")
    refs = executor.map(recipe_trial, [dict(recipe=str(suite.recipe_path(g.reference)),
                                            run_dir=run_dir(g, g.reference), devices=devices, quick=q, quiet=quiet)
                                       for g in suite.groups])
    jobs, owners = [], []
    for g, ref in zip(suite.groups, refs):
        for rel in g.edgeprune:
            jobs.append((recipe_trial, dict(recipe=str(suite.recipe_path(rel)), run_dir=run_dir(g, rel),
                                            devices=devices, quick=q, quiet=quiet)))
            owners.append(g.name)
        for sparsity in (g.tfmot.sparsities if g.tfmot else []):
            jobs.append((tfmot_trial, dict(reference_run=str(Path(ref).parent), sparsity=sparsity,
                                           learning_rate=g.tfmot.learning_rate,
                                           run_dir=f"{Path(ref).parent}-tfmot-{round(sparsity * 100)}-"
                                                   f"{digest(g.tfmot.learning_rate)[:8]}",
                                           devices=devices, quiet=quiet)))
            owners.append(g.name)
    # one executor call per trial function, results back in job order
    results: list = [None] * len(jobs)
    for fn in (recipe_trial, tfmot_trial):
        idx = [i for i, (f, _) in enumerate(jobs) if f is fn]
        for i, res in zip(idx, executor.map(fn, [jobs[i][1] for i in idx])):
            results[i] = res

    groups, notes, run_seconds = [], [], 0.0
    for g, ref in zip(suite.groups, refs):
        ref_result = _load(ref)
        mine = [_load(r) for r, owner in zip(results, owners) if owner == g.name]
        run_seconds += sum(r.get("seconds") or 0 for r in [ref_result, *mine])
        variants = summ.reference_variants(ref_result)
        variants += [summ.tfmot_variant(r) for r in mine if r["kind"] == "tfmot"]
        for r in mine:
            if r["kind"] == "recipe":
                variants += summ.edgeprune_variants(r, devices)
        summ.add_ratios(variants, devices)
        for r in [ref_result, *mine]:
            for s in r.get("skipped_devices", []):
                note = f"{s['device']} skipped: {s['reason']}"
                if note not in notes:
                    notes.append(note)
        groups.append({
            "name": g.name, "budget": budgets[g.name], "targets_spec": g.targets.model_dump(),
            "baseline": _baseline(ref_result), "variants": variants,
            "edgeprune_runs": [{"recipe": r["recipe"]["name"], "description": r["recipe"].get("description", ""),
                                "recipe_path": r["recipe_path"], "run_dir": r["run_dir"],
                                "files": list(summ.files_of(r).values()), "steps": r["steps"], "seconds": r["seconds"],
                                "device_cost": r.get("device_cost"), "shipped": summ.shipped(r)}
                               for r in mine if r["kind"] == "recipe"],
            "targets": summ.check_targets(variants, g.targets, ref_result["stages"]["baseline"]["test_accuracy"]),
        })
    _add_layer_costs(suite, groups, executor, work, log)
    result = {"schema_version": SCHEMA_VERSION, "date": date, "command": command, "quick": quick,
              "suite": str(suite.path), "devices": devices, "environment": _environment(), "notes": notes,
              "executor": executor.describe(), "work_dir": str(work),
              "seconds": round(time.perf_counter() - started, 1), "recipe_run_seconds": round(run_seconds, 1),
              "groups": groups}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{date}{'-quick' if quick else ''}.json"
    fileio.write_json(json_path, result)

    return json_path, write_report(json_path, markdown)


def _baseline(ref: dict) -> dict:
    """How the shared baseline was trained (the reference's train step) and what it reached."""
    train = next(iter(ref["recipe"]["steps"][0].values()))
    step = ref["steps"][0]
    return {"model": ref["recipe"]["model"], "dataset": ref["recipe"]["dataset"], "seed": ref["recipe"]["seed"],
            "train": train, "reused_from": step.get("reused_from"),
            "test_accuracy_keras": ref["stages"]["baseline"]["test_accuracy"],
            "val_accuracy_by_epoch": ref.get("train_history", {}).get("val_accuracy")}


def _add_layer_costs(suite: Suite, groups: list[dict], executor, work: Path, log) -> None:
    """Phase 3: per group and profiled device, the per-layer cost of float32, PTQ int8 and the shipped files
    (the .tflite ones: the profiler reads TFLite graphs)."""
    jobs, where = [], []
    for g in groups:
        for device in suite.layer_costs:
            files = {v["variant"]: str(Path(v["run_dir"]) / v["artifact"]) for v in g["variants"]
                     if (v["kind"] == "reference" or device in v.get("ships_on", [])) and v["format"] == "tflite"}
            jobs.append(dict(files=files, device=device, out=str(work / g["name"] / f"layers@{device}.json")))
            where.append(g)
    if jobs:
        log(f"bench: per-layer cost of {sum(len(j['files']) for j in jobs)} files on {', '.join(suite.layer_costs)}")
    for g, path in zip(where, executor.map(layer_cost_trial, jobs)):
        g.setdefault("layer_costs", []).append(_load(path))
