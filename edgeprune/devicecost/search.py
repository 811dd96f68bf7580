"""Budget search: the least-pruned model that meets a latency, size or MAC budget on the target.

(Moved from ``edgeprune.strategies.search``: the loop that exports, measures and chooses sits above them.)

Candidates are global channel ratios under the sensitivity allocation (fragile groups pruned
less).  Each candidate is a trial: prune, optionally fine-tune, then *measure* — MACs from the
graph, size as the exported file's bytes, latency with the device harness on the exported file.
A coarse grid runs first (in parallel under Ray), then bisection between the largest ratio that
missed the budget and the smallest that met it.  Every trial is written to
``run_dir/search/trial-XXX.json``; the summary and the best model go next to them.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.budget import Budget
from edgeprune.devicecost import SEARCH_KEYS
from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.export.tflite import export_tflite
from edgeprune.harness.bench import bench
from edgeprune.harness.profiles import get_profile
from edgeprune.progress import fit_callback
from edgeprune.pruning import model_stats, prune
from edgeprune.pruning.recalibrate import recalibrate_batchnorm
from edgeprune.strategies.sensitivity import sensitivity_overrides, sensitivity_scan
from edgeprune.strategies.trialio import (fresh_model_file, load_arrays, load_model_file, save_arrays,
                                          save_model_file, write_json)
from edgeprune.train import evaluate, fit

DEFAULT_RATIOS = (0.2, 0.4, 0.6, 0.8)


@dataclass
class SearchResult:
    best: dict | None                      # {"settings": ..., "measured": ..., "model_path": ..., "trial": n}
    trials: list = field(default_factory=list)
    status: str = "ok"                     # ok | accuracy_drop_exceeded | budget_not_met
    summary_path: str | None = None


def measure_file(path: Path, device: str, *, runs: int, warmup: int) -> dict:
    """Harness numbers for one exported file on one device."""
    r = bench([path], [device], runs=runs, warmup=warmup)[0]
    lat = r.get("latency_ms") or {}
    # the device's time: the estimated board time on an emulated board, else the measured p50
    time_ms = r["board_time_ms"] if r.get("board_time_ms") is not None else lat.get("p50")
    return {"latency_ms": time_ms, "latency_p90_ms": lat.get("p90"), "estimated": r.get("board_time_ms") is not None,
            "instructions": r.get("instructions_per_inference"), "emulated": r.get("emulated"), "cpu": r.get("cpu")}


def candidate_trial(*, model_path: str, data_path: str, out_dir: str, index: int, ratio: float, overrides: dict,
                    criterion: str, round_to: int, protect: list, protect_first: bool | None, metrics: list[str], device: str,
                    quant: str, finetune_epochs: int, learning_rate: float, batch_size: int, runs: int, warmup: int,
                    seed: int) -> dict:
    """Prune to `ratio` (per-group `overrides`), fine-tune, export and measure; writes trial-XXX.json."""
    out = Path(out_dir)
    data = load_arrays(data_path)
    if ratio > 0:
        model, plan = prune(load_model_file(model_path), ratio, criterion=criterion, overrides=overrides,
                            round_to=round_to, protect=protect, protect_first=protect_first, dataset=data, seed=seed)
        plan.save(out / f"plan-{index:03d}.json")
        recalibrate_batchnorm(model, data.x_train)
        if finetune_epochs > 0:
            fit(model, data, epochs=finetune_epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed,
                callbacks=[fit_callback(f"candidate {index} fine-tune")])
    else:
        model = fresh_model_file(model_path)
    stats = model_stats(model)
    measured = {"params": stats["params"], "macs": stats["macs"],
                "val_accuracy": round(evaluate(model, data.x_val, data.y_val), 6)}
    cand_path = save_model_file(model, out / f"candidate-{index:03d}.keras")
    if {"size_kb", "latency_ms", "instructions"} & set(metrics):
        calibration = data.calibration_samples(200, seed=seed) if quant == "int8" else None
        tfl = export_tflite(model, out / f"candidate-{index:03d}-{quant}.tflite", quant=quant, calibration=calibration)
        measured["file_bytes"] = tfl.stat().st_size
        measured["size_kb"] = round(measured["file_bytes"] / 1024, 3)
        if {"latency_ms", "instructions"} & set(metrics):
            measured.update(measure_file(tfl, device, runs=runs, warmup=warmup))
            if "instructions" in metrics and measured.get("instructions") is None:
                raise DeviceError(f"device {device} does not count instructions", "use a qemu device or budget latency_ms")
    result = {"kind": "search", "index": index, "model_path": cand_path.name,
              "settings": {"ratio": ratio, "overrides": overrides, "criterion": criterion, "round_to": round_to,
                           "quant": quant, "finetune_epochs": finetune_epochs, "device": device},
              "measured": measured}
    return write_json(out / f"trial-{index:03d}.json", result)


def budget_search(model, dataset, *, device: str = "host", budget, max_drop: float = 0.5, run_dir,
                  executor=None, criterion: str = "l1", round_to: int | None = None, ratios=DEFAULT_RATIOS,
                  refine_steps: int = 2, sensitivity=None, use_sensitivity: bool = True,
                  sensitivity_ratios=(0.2, 0.4, 0.6, 0.8), quant: str = "none", finetune_epochs: int = 1,
                  learning_rate: float = 1e-3, batch_size: int = 128, max_train_samples: int | None = 10000,
                  max_val_samples: int = 2000, runs: int = 50, warmup: int = 5, protect=(), protect_first: bool | None = None,
                  seed: int = 0) -> SearchResult:
    """Find the smallest global ratio whose measured metrics meet `budget` within `max_drop` points.

    budget: limits on latency_ms, size_kb, macs and instructions, all to be met, e.g. {"latency_ms": x} or
    {"size_kb": y, "macs": z} (a :class:`edgeprune.budget.Budget` or anything it parses).  max_drop is in
    accuracy points (0.5 = half a percent of validation accuracy below the unpruned model's).
    round_to defaults to the device profile's (SIMD-friendly widths).  `sensitivity` reuses a
    :class:`SensitivityResult`; otherwise one is scanned (``use_sensitivity=False``: uniform ratios).
    """
    budget = Budget.parse(budget).require(SEARCH_KEYS, "the search step")
    metrics = list(budget)
    ratios = sorted({float(r) for r in ratios})
    if not ratios or any(not 0.0 < r < 1.0 for r in ratios):
        raise EdgepruneError(f"search ratios {ratios} must be fractions in (0, 1)", "e.g. 0.2,0.4,0.6,0.8")
    profile = get_profile(device)  # a bad device name fails before any work
    round_to = int(profile.round_to or 1) if round_to is None else int(round_to)
    executor = executor or get_executor()
    run_dir = Path(run_dir)
    out = run_dir / "search"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model_path = save_model_file(model, out / "baseline.keras")
    data_path = save_arrays(dataset, out / "data.npz", max_train=max_train_samples, max_val=max_val_samples)
    if sensitivity is None and use_sensitivity:
        sensitivity = sensitivity_scan(model, load_arrays(data_path), ratios=sensitivity_ratios, criterion=criterion,
                                       executor=executor, run_dir=run_dir, max_val_samples=max_val_samples,
                                       protect=protect, protect_first=protect_first, seed=seed)

    common = dict(model_path=str(model_path), data_path=str(data_path), out_dir=str(out), criterion=criterion,
                  round_to=round_to, protect=list(protect), protect_first=protect_first, metrics=metrics, device=device,
                  quant=quant, finetune_epochs=finetune_epochs, learning_rate=learning_rate, batch_size=batch_size,
                  runs=runs, warmup=warmup, seed=seed)

    def job(index: int, ratio: float) -> dict:
        overrides = sensitivity_overrides(sensitivity, ratio) if sensitivity is not None and ratio > 0 else {}
        return dict(common, index=index, ratio=round(ratio, 6), overrides=overrides)

    def describe(t: dict, done: list) -> str:
        m = t["measured"]
        fits = [d for d in done if budget.met_by(d["measured"])]
        best = max(fits, key=lambda d: d["measured"]["val_accuracy"]) if fits else None
        shown = ", ".join(f"{k} {m[k]:,.4g} ({'within' if m[k] <= lim else 'over'} {lim:g})" for k, lim in budget.items())
        return (f"ratio {t['settings']['ratio']:.3f}: {shown}, val acc {m['val_accuracy']:.4f}  "
                + (f"(best within budget so far: ratio {best['settings']['ratio']:.3f}, val acc "
                   f"{best['measured']['val_accuracy']:.4f})" if best else "(none within budget yet)"))

    try:
        trials = executor.map(candidate_trial, [job(i, r) for i, r in enumerate([0.0, *ratios])],
                              label="search candidates", describe=describe)
        baseline = trials[0]["measured"]
        for _ in range(refine_steps):
            ok = sorted((t["settings"]["ratio"] for t in trials if budget.met_by(t["measured"])))
            bad = sorted((t["settings"]["ratio"] for t in trials if not budget.met_by(t["measured"])))
            if not ok or not bad or ok[0] < bad[-1] or ok[0] - bad[-1] < 0.02:
                break  # nothing to bracket (or noise made the metric non-monotone): stop refining
            trials += executor.map(candidate_trial, [job(len(trials), (ok[0] + bad[-1]) / 2)],
                                   label="search bisection", describe=lambda t, _: describe(t, trials + [t]))
    finally:
        Path(data_path).unlink(missing_ok=True)

    floor = baseline["val_accuracy"] - max_drop / 100.0
    for t in trials:
        m = t["measured"]
        m["meets_budget"] = budget.met_by(m)
        m["accuracy_drop_points"] = round(100.0 * (baseline["val_accuracy"] - m["val_accuracy"]), 4)
        m["meets_accuracy"] = m["val_accuracy"] >= floor - 1e-12
        write_json(out / f"trial-{t['index']:03d}.json", t)
    in_budget = [t for t in trials if t["measured"]["meets_budget"]]
    feasible = [t for t in in_budget if t["measured"]["meets_accuracy"]]
    pool, status = (feasible, "ok") if feasible else (in_budget, "accuracy_drop_exceeded") if in_budget else ([], "budget_not_met")
    best = None
    if pool:
        t = max(pool, key=lambda t: (t["measured"]["val_accuracy"], -t["settings"]["ratio"]))
        shutil.copyfile(out / t["model_path"], out / "best.keras")
        best = {"trial": t["index"], "settings": t["settings"], "measured": t["measured"], "model_path": "search/best.keras"}
    summary = {"budget": dict(budget), "device": device, "emulated": profile.emulated, "max_drop": max_drop,
               "criterion": criterion, "round_to": round_to, "quant": quant, "status": status,
               "baseline": baseline, "best": best, "sensitivity": sensitivity.path if sensitivity is not None else None,
               "executor": executor.describe() if hasattr(executor, "describe") else type(executor).__name__,
               "trials": [{"index": t["index"], "ratio": t["settings"]["ratio"], **{k: t["measured"].get(k) for k in
                          (*metrics, "macs", "val_accuracy", "accuracy_drop_points", "meets_budget", "meets_accuracy")}}
                          for t in trials]}
    write_json(out / "summary.json", summary)
    return SearchResult(best, trials, status, str(out / "summary.json"))
