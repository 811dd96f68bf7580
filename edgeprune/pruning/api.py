"""`edgeprune.prune(model, ...)`: analyse, score, select, shrink — and the equivalence check."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.pruning.graph import ChannelGraph, PropagationContext, build_graph, flatten_model
from edgeprune.pruning.groups import Group, dependency_groups
from edgeprune.pruning.importance import compute_scores, scores_from_channels
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
    first_layer: dict | None = None  # what the default (protect_first=None) did about the first layer


def first_weight_layer(model) -> str | None:
    """The first layer (in the flat model) that makes new channels from its weights."""
    flat = flatten_model(model, copy=False)
    for layer in flat.layers:
        rule = rule_for(layer)
        if rule is not None and rule.creates_channels:
            return layer.name
    return None


def analyse(model, protect=(), protect_first: bool | None = False, strict: bool = False) -> Analysis:
    """The channel graph and its dependency groups.

    protect_first: True protects the first weight layer whatever it pins; None (the default of
    ``prune`` and of recipes) protects it only when that pins no shared group: see
    :func:`_decide_first_layer`, the one place that decides.
    """
    protect = list(protect)
    first = first_weight_layer(model) if protect_first is not False else None
    if protect_first and first:
        protect.append(first)
    g = build_graph(model, protect=protect, strict=strict)
    groups = dependency_groups(g)
    decision = None
    if protect_first is None and first and first not in g.protected and first not in g.opaque:
        decision = _decide_first_layer(g, groups, first)
        if decision["protected"]:
            _pin_layer(g, first)
            groups = dependency_groups(g)
    return Analysis(g, groups, decision)


def _decide_first_layer(g: ChannelGraph, groups: list[Group], first: str) -> dict:
    """The default about the first weight layer: protect it (cheap, and the most sensitive) unless that
    pins a group shared with other layers (a residual trunk) or leaves nothing else to prune."""
    own_classes = set(g.classes_of(g.source_atoms[first]).tolist())
    own = [grp for grp in groups if own_classes & set(grp.channels)]
    shared = sorted({s for grp in own if grp.prunable for s in grp.sources} - {first})
    others = [grp for grp in groups if grp.prunable and grp not in own]
    flag = "--protect-first (recipe: protect_first: true)"
    if shared:
        more = f", … ({len(shared) - 4} more)" if len(shared) > 4 else ""
        message = (f"first weight layer '{first}' left prunable: it shares a dependency group with "
                   f"{', '.join(shared[:4])}{more}, which protecting it would keep whole — {flag} protects it anyway")
        return {"layer": first, "protected": False, "reason": "shared_group", "shared_with": shared, "message": message}
    if any(grp.prunable for grp in own) and not others:
        message = (f"first weight layer '{first}' left prunable: its group is the only one there is to prune — "
                   f"{flag} protects it anyway")
        return {"layer": first, "protected": False, "reason": "only_group", "shared_with": [], "message": message}
    message = (f"first weight layer '{first}' protected (its channels are a group of their own) — "
               "--no-protect-first (recipe: protect_first: false) prunes it too")
    return {"layer": first, "protected": True, "reason": "own_group", "shared_with": [], "message": message}


def _pin_layer(g: ChannelGraph, name: str) -> None:
    """Protect `name` in an analysed graph: what ``build_graph(protect=[name])`` does while it builds."""
    ctx = PropagationContext(g)
    for node in g.nodes_of(name):
        for key in node.outputs:
            ctx.pin(g.atoms_of[key], f"protected layer '{name}'")
    g.protected.add(name)


def prune(model, ratio: float = 0.5, *, criterion: str = "l1", global_pruning: bool = False,
          round_to: int = 1, min_channels: int = 1, protect=(), protect_first: bool | None = None,
          overrides: dict | None = None, aggregate: str = "mean", dataset=None, seed: int = 0,
          max_group_ratio: float = 0.9, plan: PrunePlan | None = None, strict: bool = False,
          channel_scores: dict[str, float] | None = None):
    """Remove whole channels from `model`; returns ``(pruned_model, plan)``.

    ratio: fraction of each group's channels to remove (or of all channels with global_pruning).
    overrides: {layer-name regex: ratio} for groups containing a matching source layer.
    protect: layer names/regexes whose output channels are kept. protect_first: True keeps the first
    weight layer (cheap, and the most sensitive) whatever it pins, False prunes it like any other,
    None (default) keeps it only when that pins no group shared with other layers; what it did is
    ``plan.settings["first_layer"]``.  plan: replay a saved plan instead of scoring
    (:func:`apply_plan`: the plan's settings, including its protect list, decide; the other arguments are ignored).
    A layer the engine cannot follow keeps its groups whole (noted in ``plan.kept``); ``strict``
    raises UnsupportedLayerError instead.  channel_scores: this model's scores already computed with the
    same criterion, data and seed (:func:`~edgeprune.pruning.importance.scores_by_channel`), so that
    trials cutting one model many ways score it once.
    """
    if plan is not None:  # the plan's own protect decides the graph, whatever this call says
        return apply_plan(model, plan), plan
    protect = list(protect)
    an = analyse(model, protect, protect_first=protect_first, strict=strict)
    g = an.graph
    first = an.first_layer["layer"] if an.first_layer else first_weight_layer(model) if protect_first else None
    protected_first = bool(first) and first in g.protected and first not in protect
    if protected_first:
        protect.append(first)  # a replay (apply_plan) rebuilds the graph with the same protection
    settings = {"ratio": ratio, "criterion": criterion, "global": global_pruning, "round_to": round_to,
                "min_channels": min_channels, "protect": protect, "protect_first": protected_first,
                "first_layer": an.first_layer, "overrides": dict(overrides or {}), "aggregate": aggregate,
                "seed": seed}
    scores = (compute_scores(g, criterion, dataset=dataset, aggregate=aggregate, seed=seed) if channel_scores is None
              else scores_from_channels(g, channel_scores))
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
