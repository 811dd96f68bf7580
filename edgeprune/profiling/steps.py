"""The prune step's device-cost mode: allocate, replay the plan, and profile before and after.

Writes ``profile.json`` into the run directory: the allocation (budget, predicted cost, channels per
group, the greedy's steps) and the per-op profile of the unpruned and the pruned model at the
costed precision on the device.  The report reads that file ("where the time goes").
"""
from __future__ import annotations

import json

PROFILE_FILE = "profile.json"
CALIBRATION_SAMPLES = 200


def device_cost_prune(ctx, spec, model):
    """(pruned model, plan, summary for metrics.json) for a prune step with ``allocation: device_cost``."""
    from edgeprune.executor import get_executor
    from edgeprune.profiling.allocate import allocate
    from edgeprune.profiling.api import profile_model
    from edgeprune.pruning import prune

    ds = ctx.dataset
    calibration = ds.calibration_samples(CALIBRATION_SAMPLES, seed=ctx.recipe.seed)
    executor = get_executor()
    alloc = allocate(model, spec.device, dict(spec.budget), precision=spec.precision, criterion=spec.criterion,
                     dataset=ds, calibration=calibration, protect=spec.protect, protect_first=spec.protect_first,
                     min_channels=spec.min_channels, max_group_ratio=spec.max_group_ratio, aggregate=spec.aggregate,
                     seed=ctx.recipe.seed, keep_float=spec.keep_float, executor=executor, weigh=spec.weigh,
                     run_dir=ctx.run_dir, best_effort=spec.best_effort,
                     log=lambda m: ctx.log(f"      {m}"))
    pruned, plan = prune(model, plan=alloc.plan, protect_first=False)
    before = profile_model(model, spec.device, spec.precision, calibration=calibration, executor=executor,
                           keep_float=spec.keep_float)
    after = profile_model(pruned, spec.device, spec.precision, calibration=calibration, executor=executor,
                          keep_float=spec.keep_float)
    summary = alloc.summary()
    metric = before["metric"]
    summary["budget"] = alloc.limits.get(metric)  # the limit on the device's own metric, if any
    summary["measured_cost"] = after["whole"]
    summary["measured_baseline_cost"] = before["whole"]
    summary["measured_file_kb"] = after["file_bytes"] / 1024
    summary["measured_met"] = (after["whole"] <= alloc.limits.get(metric, float("inf"))
                               and summary["measured_file_kb"] <= alloc.limits.get("size_kb", float("inf")))
    ctx.path(PROFILE_FILE).write_text(json.dumps({"device": spec.device, "precision": spec.precision,
                                                  "allocation": summary, "before": before, "after": after}, indent=1))
    summary["best_effort"] = not summary["met"]  # reached only with best_effort: true
    short = {k: summary[k] for k in ("limits", "predicted", "measured_cost", "measured_baseline_cost",
                                     "measured_file_kb", "met", "measured_met", "counts", "full", "best_effort")}
    if not summary["met"]:
        ctx.log(f"      warning: best effort: no channel counts meet every limit on {spec.device}; kept the cheapest "
                f"found (predicted {summary['predicted']}, limits {alloc.limits})")
    return pruned, plan, {**short, "device": spec.device, "precision": spec.precision, "profile_path": PROFILE_FILE}
