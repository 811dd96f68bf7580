"""`edgeprune.prune(model, ...)`: analyse, score, select, shrink — and the equivalence check."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.pruning.graph import ChannelGraph, build_graph
from edgeprune.pruning.groups import Group, dependency_groups
from edgeprune.pruning.importance import compute_scores
from edgeprune.pruning.plan import PrunePlan, build_plan, classes_from_plan, select_channels
from edgeprune.pruning.surgery import shrink_model, zero_removed_contributions


@dataclass
class Analysis:
    graph: ChannelGraph
    groups: list[Group]


def first_weight_layer(model) -> str | None:
    from edgeprune.pruning.graph import flatten_model

    from edgeprune.pruning.rules import RULES, ConvRule, DenseRule, SeparableRule

    for layer in flatten_model(model).layers:
        if isinstance(RULES.get(type(layer).__name__), (ConvRule, DenseRule, SeparableRule)):
            return layer.name
    return None


def analyse(model, protect=(), protect_first: bool = False) -> Analysis:
    protect = list(protect)
    if protect_first:
        first = first_weight_layer(model)
        if first:
            protect.append(first)
    g = build_graph(model, protect=protect)
    return Analysis(g, dependency_groups(g))


def prune(model, ratio: float = 0.5, *, criterion: str = "l1", global_pruning: bool = False,
          round_to: int = 1, min_channels: int = 1, protect=(), protect_first: bool = True,
          overrides: dict | None = None, aggregate: str = "mean", dataset=None, seed: int = 0,
          max_group_ratio: float = 0.9, plan: PrunePlan | None = None):
    """Remove whole channels from `model`; returns ``(pruned_model, plan)``.

    ratio: fraction of each group's channels to remove (or of all channels with global_pruning).
    overrides: {layer-name regex: ratio} for groups containing a matching source layer.
    protect: layer names/regexes whose output channels are kept. protect_first keeps the first
    weight layer (cheap, and the most sensitive).  plan: replay a saved plan instead of scoring
    (:func:`apply_plan`: the plan's settings, including its protect list, decide; the other arguments are ignored).
    """
    if plan is not None:  # the plan's own protect decides the graph, whatever this call says
        return apply_plan(model, plan), plan
    protect = list(protect)
    if protect_first and (first := first_weight_layer(model)):
        protect.append(first)
    an = analyse(model, protect)
    g = an.graph
    settings = {"ratio": ratio, "criterion": criterion, "global": global_pruning, "round_to": round_to,
                "min_channels": min_channels, "protect": protect, "protect_first": protect_first,
                "overrides": dict(overrides or {}), "aggregate": aggregate, "seed": seed}
    scores = compute_scores(g, criterion, dataset=dataset, aggregate=aggregate, seed=seed)
    chosen = select_channels(an.groups, scores, ratio=ratio, global_pruning=global_pruning, round_to=round_to,
                             min_channels=min_channels, overrides=overrides, max_group_ratio=max_group_ratio)
    new_plan = build_plan(g, an.groups, chosen, scores, settings, model)
    removed = {c for cs in chosen.values() for c in cs}
    return shrink_model(g, removed, name=model.name), new_plan


def apply_plan(model, plan: PrunePlan):
    """Replay `plan` on a fresh copy of the model it was made from."""
    g = build_graph(model, protect=plan.settings.get("protect", ()))
    return shrink_model(g, classes_from_plan(g, plan), name=model.name)


def verify_equivalence(original, pruned, plan: PrunePlan, x: np.ndarray, tolerance: float = 1e-4) -> float:
    """Max |Δ| between `pruned` and `original` with the removed channels' contributions zeroed.

    Raises EdgepruneError when it exceeds `tolerance`: that would be a coupling mistake.
    """
    g = build_graph(original, protect=plan.settings.get("protect", ()))
    zeroed = zero_removed_contributions(g, classes_from_plan(g, plan))
    a = _as_list(zeroed.predict(x, verbose=0))
    b = _as_list(pruned.predict(x, verbose=0))
    diff = max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))
    if diff > tolerance:
        raise EdgepruneError(
            f"pruned model differs from the zeroed original by {diff:.3g} (> {tolerance:g})",
            "this is an engine bug: please report the model",
        )
    return diff


def _as_list(y):
    return y if isinstance(y, list) else [y]
