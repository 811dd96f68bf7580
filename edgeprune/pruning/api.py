"""`edgeprune.prune(model, ...)`: analyse, score, select, shrink — and the equivalence check."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.pruning.graph import ChannelGraph, build_graph, flatten_model
from edgeprune.pruning.groups import Group, dependency_groups
from edgeprune.pruning.importance import compute_scores
from edgeprune.pruning.kept import kept_notes
from edgeprune.pruning.plan import PrunePlan, build_plan, classes_from_plan, select_channels
from edgeprune.pruning.rules import rule_for
from edgeprune.pruning.stats import graph_macs
from edgeprune.pruning.surgery import shrink_model
from edgeprune.pruning.verify import verify_pruning


@dataclass
class Analysis:
    graph: ChannelGraph
    groups: list[Group]


def first_weight_layer(model) -> str | None:
    """The first layer (in the flat model) that makes new channels from its weights."""
    flat = flatten_model(model, copy=False)
    for layer in flat.layers:
        rule = rule_for(layer)
        if rule is not None and rule.creates_channels:
            return layer.name
    return None


def analyse(model, protect=(), protect_first: bool = False, strict: bool = False) -> Analysis:
    protect = list(protect)
    if protect_first:
        first = first_weight_layer(model)
        if first:
            protect.append(first)
    g = build_graph(model, protect=protect, strict=strict)
    return Analysis(g, dependency_groups(g))


def prune(model, ratio: float = 0.5, *, criterion: str = "l1", global_pruning: bool = False,
          round_to: int = 1, min_channels: int = 1, protect=(), protect_first: bool = True,
          overrides: dict | None = None, aggregate: str = "mean", dataset=None, seed: int = 0,
          max_group_ratio: float = 0.9, plan: PrunePlan | None = None, strict: bool = False):
    """Remove whole channels from `model`; returns ``(pruned_model, plan)``.

    ratio: fraction of each group's channels to remove (or of all channels with global_pruning).
    overrides: {layer-name regex: ratio} for groups containing a matching source layer.
    protect: layer names/regexes whose output channels are kept. protect_first keeps the first
    weight layer (cheap, and the most sensitive).  plan: replay a saved plan instead of scoring
    (:func:`apply_plan`: the plan's settings, including its protect list, decide; the other arguments are ignored).
    A layer the engine cannot follow keeps its groups whole (noted in ``plan.kept``); ``strict``
    raises UnsupportedLayerError instead.
    """
    if plan is not None:  # the plan's own protect decides the graph, whatever this call says
        return apply_plan(model, plan), plan
    protect = list(protect)
    first = first_weight_layer(model) if protect_first else None
    if first:
        protect.append(first)
    an = analyse(model, protect, strict=strict)
    g = an.graph
    settings = {"ratio": ratio, "criterion": criterion, "global": global_pruning, "round_to": round_to,
                "min_channels": min_channels, "protect": protect, "protect_first": protect_first,
                "overrides": dict(overrides or {}), "aggregate": aggregate, "seed": seed}
    scores = compute_scores(g, criterion, dataset=dataset, aggregate=aggregate, seed=seed)
    chosen = select_channels(an.groups, scores, ratio=ratio, global_pruning=global_pruning, round_to=round_to,
                             min_channels=min_channels, overrides=overrides, max_group_ratio=max_group_ratio)
    new_plan = build_plan(g, an.groups, chosen, scores, settings, model)
    new_plan.kept = kept_notes(g, an.groups, graph_macs(g), first_layer=first)
    new_plan.graph, new_plan._source = g, id(model)
    removed = {c for cs in chosen.values() for c in cs}
    return shrink_model(g, removed, name=model.name), new_plan


def apply_plan(model, plan: PrunePlan):
    """Replay `plan` on a fresh copy of the model it was made from."""
    g = build_graph(model, protect=plan.settings.get("protect", ()))
    plan.graph, plan._source = g, id(model)  # a verify that follows reuses the analysis
    return shrink_model(g, classes_from_plan(g, plan), name=model.name)


def verify_equivalence(original, pruned, plan: PrunePlan, x: np.ndarray, tolerance: float = 1e-4) -> float:
    """Max |Δ| of the final outputs between `pruned` and `original` with the removed channels'
    contributions zeroed; raises EdgepruneError when the check fails (see :func:`verify_pruning`,
    whose summary lands in ``plan.verify``)."""
    return verify_pruning(original, pruned, plan, x, rtol=tolerance)["output_max_abs_diff"]
