"""What pruning had to keep, and why: notes naming the layer or option that pins whole groups.

Two kinds of pins are worth a user's attention: a layer the engine cannot follow (its channels
are kept intact instead of stopping the run) and protection (the first weight layer, ``--protect``
patterns, the model outputs) that pins a large share of the prunable MACs.  The share weighs each
layer touching a group by the part of its channels the cause keeps: a layer's MACs grow with its input
and its output channels, so each side counts half (a BatchNorm or depthwise layer has one side), and a
side counts by the channels of its groups that the cause keeps whole.  A conv that reads a pinned
residual trunk but writes a prunable group of its own is half pinned, not pinned.  The total is the
MACs of the layers touching any group.
"""
from __future__ import annotations

from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.groups import Group

PROTECTION_SHARE = 1 / 3   # protection notes appear above this share of the prunable MACs


def _layers_of(groups) -> set[str]:
    return {name for grp in groups for name, roles in grp.members.items() if roles != {"pass"}}


def _pinned_macs(kept: list[Group], groups: list[Group], macs: dict[str, int]) -> float:
    """MACs that the `kept` groups hold: per layer, the kept share of its channels, input and output
    side weighing half each (see the module docstring)."""
    kept_ids = {grp.id for grp in kept}
    sides: dict[str, dict[str, list[Group]]] = {}
    for grp in groups:
        for name, roles in grp.members.items():
            if roles & {"in", "channel"}:
                sides.setdefault(name, {}).setdefault("in", []).append(grp)
            if roles & {"out", "channel"}:
                sides.setdefault(name, {}).setdefault("out", []).append(grp)
    total = 0.0
    for name in _layers_of(kept):
        layer_sides = list(sides.get(name, {}).values())
        fractions = [sum(g.size for g in side if g.id in kept_ids) / max(sum(g.size for g in side), 1)
                     for side in layer_sides]
        if fractions:
            total += macs.get(name, 0) * sum(fractions) / len(fractions)
    return total


def _sources(groups, limit: int = 4) -> str:
    names = [s for grp in groups for s in grp.sources]
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def kept_notes(g: ChannelGraph, groups: list[Group], macs: dict[str, int], first_layer: str | None = None) -> list[dict]:
    """One note per cause: {kind, layers, groups, sources, macs_share, option, message}."""
    reasons_of: dict[int, set[str]] = {}
    for reason, atoms in g.pin_events:
        for c in set(g.classes_of(atoms).tolist()):
            reasons_of.setdefault(c, set()).add(reason)
    total = sum(macs.get(n, 0) for n in _layers_of(groups))

    def kept_by(reasons: set[str]) -> list[Group]:
        return [grp for grp in groups if not grp.prunable
                and any(reasons_of.get(c, set()) & reasons for c in grp.channels)]

    notes = []

    def note(kind, layers, reasons, message, option, always=False):
        kept = kept_by(reasons)
        share = _pinned_macs(kept, groups, macs) / total if total else 0.0
        if not (always or (kept and share > PROTECTION_SHARE)):
            return
        notes.append({"kind": kind, "layers": layers, "groups": [grp.id for grp in kept],
                      "sources": [s for grp in kept for s in grp.sources], "macs_share": round(share, 4),
                      "option": option,
                      "message": message.format(n=len(kept), s="" if len(kept) == 1 else "s", sources=_sources(kept) or "none",
                                                share=share)})

    for name, problem in g.kept_layers.items():
        problem = problem.replace("{", "{{").replace("}", "}}")
        note("unsupported", [name], {f"layer '{name}' the engine cannot follow"},
             f"layer '{name}' kept intact ({problem}): {{n}} group{{s}} kept whole (sources: {{sources}}), "
             "{share:.0%} of the prunable MACs pinned — --strict stops here instead", "--strict", always=True)
    protected = sorted(g.protected)
    if first_layer in g.protected:
        note("protect_first", [first_layer], {f"protected layer '{first_layer}'"},
             f"protecting the first weight layer '{first_layer}' keeps {{n}} group{{s}} whole (sources: {{sources}}), "
             "pinning {share:.0%} of the prunable MACs — --no-protect-first (recipe: protect_first: false) frees them",
             "--no-protect-first")
    user = [n for n in protected if n != first_layer]
    if user:
        note("protect", user, {f"protected layer '{n}'" for n in user},
             f"--protect ({', '.join(user[:4])}{', …' if len(user) > 4 else ''}) keeps {{n}} group{{s}} whole "
             "(sources: {sources}), pinning {share:.0%} of the prunable MACs — drop those --protect patterns to free them",
             "--protect")
    note("output", [], {"model output"},
         "the model outputs keep {n} group{s} whole (sources: {sources}), pinning {share:.0%} of the prunable MACs — "
         "output channels are the model's interface, no option frees them", None)
    return notes
