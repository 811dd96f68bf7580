"""Pruning by options: one ratio per group, or channels chosen from measured device cost.

:func:`prune_with_options` is the one way the CLI (and the Python API) apply a
:class:`edgeprune.prune_options.PruneOptions`; :func:`device_cost_prune` is the recipe's device-cost
mode (allocate, replay the plan, and profile before and after, into ``profile.json`` that the report
reads: "where the time goes").  Moved from ``edgeprune.profiling.steps`` and ``edgeprune.profiling.cli``.
"""
from __future__ import annotations

import json

from edgeprune.devicecost.allocate import allocate
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.profiling.api import profile_model
from edgeprune.prune_options import PruneOptions
from edgeprune.pruning import prune
from edgeprune.pruning.recalibrate import recalibrate_batchnorm

PROFILE_FILE = "profile.json"
CALIBRATION_SAMPLES = 200


def calibration_for(precision: str, dataset, seed: int = 0):
    """Calibration samples for costing `precision` (int8, mixed), None for float precisions."""
    if precision not in ("int8", "mixed", "auto"):
        return None
    if dataset is None:
        raise EdgepruneError(f"costing {precision} needs calibration data", "pass --data, or --precision float32")
    return dataset.calibration_samples(CALIBRATION_SAMPLES, seed=seed)


def allocate_for_cli(model, dataset, options: PruneOptions, log=print):
    """The PrunePlan of a device-cost allocation, with a line per step and the predicted result."""
    calibration = calibration_for(options.precision, dataset)
    a = allocate(model, options.device, options.budget, precision=options.precision, criterion=options.criterion,
                 dataset=dataset, calibration=calibration, protect=options.protect,
                 protect_first=options.first_layer(), min_channels=options.min_channels,
                 max_group_ratio=options.max_group_ratio, aggregate=options.aggregate, keep_float=options.keep_float,
                 weigh=options.weigh, best_effort=options.best_effort, rivals=options.compare_devices, log=log)
    state = "met" if a.met else "NOT met (best effort: kept the cheapest channel counts found)"
    chosen = a.precision + (f" with {', '.join(a.keep_float)} float" if a.keep_float else "")
    log(f"device-cost allocation on {options.device} ({chosen}): budget {a.limits} {state}; predicted "
        f"{a.predicted} from {a.baseline}; channels kept {a.counts}")
    return a.plan


def prune_with_options(model, options: PruneOptions, dataset=None, *, plan=None, seed: int = 0, log=print):
    """``(pruned model, plan)`` for `options`.

    plan: replay a saved plan instead of scoring.  BatchNorm statistics are recalibrated on the training
    split when `dataset` is given and ``options.recalibrate_bn`` (the default), after the surgery; an
    equivalence check against the zeroed original belongs before that (see :func:`recalibrate`)."""
    if options.device_cost and plan is None:
        plan = allocate_for_cli(model, dataset, options, log=log)
    pruned, plan = prune(model, options.ratio, criterion=options.criterion, global_pruning=options.global_pruning,
                         round_to=options.round_to, min_channels=options.min_channels, protect=options.protect,
                         protect_first=options.first_layer(), overrides=dict(options.overrides),
                         aggregate=options.aggregate, dataset=dataset, seed=seed, plan=plan, strict=options.strict)
    return pruned, plan


def recalibrate(pruned, options: PruneOptions, dataset) -> int:
    """Re-estimate BatchNorm moving statistics on `dataset`'s training split (the recipe's and the CLI's
    default, when data is given); returns how many layers changed (0 without data or with recalibrate_bn off)."""
    if dataset is None or not options.recalibrate_bn:
        return 0
    return recalibrate_batchnorm(pruned, dataset.x_train)


def device_cost_prune(ctx, spec, model):
    """(pruned model, plan, summary for metrics.json) for a prune step with ``allocation: device_cost``."""
    ds = ctx.dataset
    calibration = ds.calibration_samples(CALIBRATION_SAMPLES, seed=ctx.recipe.seed)
    executor = get_executor()
    alloc = allocate(model, spec.device, spec.budget, precision=spec.precision, criterion=spec.criterion,
                     dataset=ds, calibration=calibration, protect=spec.protect, protect_first=spec.protect_first,
                     min_channels=spec.min_channels, max_group_ratio=spec.max_group_ratio, aggregate=spec.aggregate,
                     seed=ctx.recipe.seed, keep_float=spec.keep_float, executor=executor, weigh=spec.weigh,
                     run_dir=ctx.run_dir, best_effort=spec.best_effort, rivals=spec.compare_devices,
                     log=lambda m: ctx.log(f"      {m}"))
    pruned, plan = prune(model, plan=alloc.plan, protect_first=False)
    # the file the allocation costed (precision auto: the precision it chose), before and after
    before = profile_model(model, spec.device, alloc.precision, calibration=calibration, executor=executor,
                           keep_float=alloc.keep_float)
    after = profile_model(pruned, spec.device, alloc.precision, calibration=calibration, executor=executor,
                          keep_float=alloc.keep_float)
    summary = alloc.summary()
    metric = before["metric"]
    summary["budget"] = alloc.limits.get(metric)  # the limit on the device's own metric, if any
    summary["measured_cost"] = after["whole"]
    summary["measured_baseline_cost"] = before["whole"]
    summary["measured_file_kb"] = after["file_bytes"] / 1024
    summary["measured_met"] = (after["whole"] <= alloc.limits.get(metric, float("inf"))
                               and summary["measured_file_kb"] <= alloc.limits.get("size_kb", float("inf")))
    ctx.path(PROFILE_FILE).write_text(json.dumps({"device": spec.device, "precision": alloc.precision,
                                                  "allocation": summary, "before": before, "after": after}, indent=1))
    summary["best_effort"] = not summary["met"]  # reached only with best_effort: true
    short = {k: summary[k] for k in ("limits", "predicted", "measured_cost", "measured_baseline_cost",
                                     "measured_file_kb", "met", "measured_met", "counts", "full", "best_effort",
                                     "keep_float", "taken_from")}
    if not summary["met"]:
        ctx.log(f"      warning: best effort: no channel counts meet every limit on {spec.device}; kept the cheapest "
                f"found (predicted {summary['predicted']}, limits {alloc.limits})")
    return pruned, plan, {**short, "device": spec.device, "precision": alloc.precision,
                          "searched_precision": spec.precision == "auto", "profile_path": PROFILE_FILE}
