"""Iterative (gradual) pruning: prune a little, fine-tune, repeat until the target is reached.

One-shot pruning is ``edgeprune.prune(model, ratio)``.  Here the cumulative fraction of removed
channels follows a schedule (linear, or the cubic "polynomial" decay of Zhu & Gupta 2017, which
prunes most while the network is still redundant) and reaches the target at the last step.  Each
step prunes the already-pruned model, so the step's ratio is computed from the current widths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeprune import progress
from edgeprune.errors import EdgepruneError

SCHEDULES = ("linear", "polynomial")


@dataclass
class GradualResult:
    model: object
    plans: list = field(default_factory=list)      # one PrunePlan per step (each relative to the previous model)
    history: list = field(default_factory=list)    # per step: step, ratio, step_ratio, params, macs, val accuracies


def cumulative_ratio(step: int, steps: int, target: float, schedule: str = "linear") -> float:
    """Fraction of the original channels removed after `step` of `steps`."""
    if schedule not in SCHEDULES:
        raise EdgepruneError(f"unknown pruning schedule '{schedule}'", f"use one of {', '.join(SCHEDULES)}")
    t = step / steps
    return target * (t if schedule == "linear" else 1.0 - (1.0 - t) ** 3)


def group_widths(model, protect=(), protect_first: bool | None = None) -> dict[str, int]:
    """first source layer of each prunable group -> its channel count."""
    # pruning loads TensorFlow: the recipe's prune step imports this module while the plan is validated
    from edgeprune.pruning import analyse

    return {g.sources[0]: g.size for g in analyse(model, protect, protect_first).groups if g.prunable}


def removed_fraction(original: dict[str, int], current: dict[str, int]) -> float:
    """Channel-weighted fraction of the original groups' channels that are gone."""
    total = sum(original.values())
    return 1.0 - sum(current.get(k, 0) for k in original) / total if total else 0.0


def gradual_prune(model, dataset, *, target_ratio: float, steps: int, schedule: str = "linear",
                  finetune_epochs: int = 1, criterion: str = "l1", teacher=None, learning_rate: float = 1e-3,
                  batch_size: int = 128, max_train_samples: int | None = None, seed: int = 0,
                  recalibrate_bn: bool = True, **prune_kwargs) -> GradualResult:
    """Prune `model` to `target_ratio` of its channels in `steps` prune + fine-tune rounds.

    prune_kwargs go to :func:`edgeprune.prune` (round_to, min_channels, protect, overrides,
    global_pruning, ...).  Without global pruning every group is steered to its own target
    (``overrides`` give per-group targets), so rounding errors do not pile up across steps.
    """
    # pruning loads TensorFlow: the recipe's prune step imports this module while the plan is validated
    from edgeprune.pruning import analyse, model_stats, prune
    from edgeprune.pruning.plan import resolve_ratio
    from edgeprune.pruning.recalibrate import recalibrate_batchnorm
    from edgeprune.train import evaluate, fit

    if steps < 1:
        raise EdgepruneError(f"gradual pruning needs at least 1 step, got {steps}", "pass steps >= 1")
    if not 0.0 <= target_ratio < 1.0:
        raise EdgepruneError(f"target ratio {target_ratio} is out of range", "use a fraction in [0, 1)")
    cumulative_ratio(1, steps, target_ratio, schedule)  # validates the schedule name
    user_overrides = dict(prune_kwargs.pop("overrides", None) or {})
    global_pruning = bool(prune_kwargs.get("global_pruning", False))
    protect, protect_first = prune_kwargs.get("protect", ()), prune_kwargs.get("protect_first")
    prune_kwargs.pop("ratio", None)

    groups0 = [g for g in analyse(model, protect, protect_first).groups if g.prunable]
    widths0 = {g.sources[0]: g.size for g in groups0}
    targets = {g.sources[0]: resolve_ratio(g, target_ratio, user_overrides) for g in groups0}

    current, plans, history = model, [], []
    shown = progress.open_task("gradual pruning", total=steps)
    for step in range(1, steps + 1):
        widths = group_widths(current, protect, protect_first)
        if global_pruning:
            want = 1.0 - cumulative_ratio(step, steps, target_ratio, schedule)
            kept_now = sum(widths.get(k, 0) for k in widths0)
            step_ratio = max(0.0, 1.0 - want * sum(widths0.values()) / kept_now) if kept_now else 0.0
            overrides = user_overrides
        else:
            overrides = {}
            for src, n0 in widths0.items():
                want_kept = round(n0 * (1.0 - cumulative_ratio(step, steps, targets[src], schedule)))
                n = widths.get(src, n0)
                overrides[re.escape(src)] = min(max(0.0, (n - want_kept) / n), 0.95) if n else 0.0
            step_ratio = 0.0
        current, plan = prune(current, step_ratio, criterion=criterion, dataset=dataset, seed=seed,
                              overrides=overrides, **prune_kwargs)
        plans.append(plan)
        if recalibrate_bn:
            recalibrate_batchnorm(current, dataset.x_train)
        before_ft = evaluate(current, dataset.x_val, dataset.y_val)
        after_ft = before_ft
        if finetune_epochs > 0:
            after_ft = fit(current, dataset, epochs=finetune_epochs, learning_rate=learning_rate, batch_size=batch_size,
                           teacher=teacher, max_train_samples=max_train_samples, seed=seed + step,
                           callbacks=[progress.fit_callback(f"step {step}/{steps} fine-tune")]).val_accuracy
        stats = model_stats(current)
        history.append({
            "step": step,
            "ratio": round(removed_fraction(widths0, group_widths(current, protect, protect_first)), 6),
            "scheduled_ratio": round(cumulative_ratio(step, steps, target_ratio, schedule), 6),
            "step_ratio": round(step_ratio, 6) if global_pruning else None,
            "params": stats["params"], "macs": stats["macs"],
            "val_accuracy_before_ft": round(float(before_ft), 6), "val_accuracy": round(float(after_ft), 6),
        })
        h = history[-1]
        shown.report(f"step {step}/{steps}: {h['ratio']:.1%} of channels removed, {h['params']:,} params, "
                     f"val acc {h['val_accuracy_before_ft']:.4f} → {h['val_accuracy']:.4f} after fine-tuning",
                     completed=step)
    progress.close_task(shown)
    return GradualResult(current, plans, history)
