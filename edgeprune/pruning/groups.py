"""Dependency groups: the prunable channels of a :class:`ChannelGraph`, bundled by coupling.

A *channel* is one union-find class of atoms (removing it removes every tensor position carrying
one of its atoms).  A *group* is the set of channels whose atoms come from the same layers: for a
plain conv → BN → conv chain that is the first conv's filters; for a residual stage it is every
conv that writes into the Adds of that stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeprune.keras import keras
from edgeprune.pruning.graph import ChannelGraph, UnionFind
from edgeprune.pruning.rules import rule_for


@dataclass
class Group:
    id: int
    channels: list[int]                       # class ids, in the first source's channel order
    sources: list[str]                        # layers whose output channels are in the group
    members: dict[str, set] = field(default_factory=dict)  # layer -> roles {"out", "in", "channel"}
    pinned: dict[int, str] = field(default_factory=dict)   # class id -> why it must stay

    @property
    def size(self) -> int:
        return len(self.channels)

    @property
    def prunable(self) -> list[int]:
        return [c for c in self.channels if c not in self.pinned]

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "channels": self.size,
            "prunable": len(self.prunable),
            "sources": self.sources,
            "members": {k: sorted(v) for k, v in self.members.items()},
            "pinned_reasons": sorted(set(self.pinned.values())),
        }


def dependency_groups(g: ChannelGraph) -> list[Group]:
    """Group the graph's channels; input-only groups (nothing to prune) are left out."""
    weight_sources = [name for name in g.source_atoms
                      if g.has_layer(name) and not isinstance(g.layer(name), keras.layers.InputLayer)]
    cls_uf = UnionFind()
    class_index: dict[int, int] = {}

    def idx(c: int) -> int:
        if c not in class_index:
            class_index[c] = int(cls_uf.add(1)[0])
        return class_index[c]

    for name in weight_sources:
        classes = g.classes_of(g.source_atoms[name])
        first = idx(int(classes[0]))
        for c in classes[1:]:
            cls_uf.union(first, idx(int(c)))

    by_root: dict[int, list[str]] = {}
    for name in weight_sources:
        root = cls_uf.find(idx(int(g.cls(g.source_atoms[name][0]))))
        by_root.setdefault(root, []).append(name)

    pinned_classes: dict[int, str] = {}
    for atom, reason in g.pinned.items():
        pinned_classes.setdefault(g.cls(atom), reason)

    groups = []
    for sources in by_root.values():
        order: list[int] = []
        seen = set()
        for name in sources:
            for c in g.classes_of(g.source_atoms[name]):
                if int(c) not in seen:
                    seen.add(int(c))
                    order.append(int(c))
        group = Group(id=len(groups), channels=order, sources=sources,
                      pinned={c: pinned_classes[c] for c in order if c in pinned_classes})
        groups.append(group)
    _fill_members(g, groups)
    return [grp for grp in groups if grp.prunable] + [grp for grp in groups if not grp.prunable]


def _fill_members(g: ChannelGraph, groups: list[Group]) -> None:
    """Roles: "out" (creates the channels), "in" (its weights mix them into new channels),
    "channel" (per-channel weights: BN, depthwise, ...), "pass" (no weights)."""
    owner = {c: grp for grp in groups for c in grp.channels}
    for node in g.nodes:
        layer = g.layer(node.layer)
        rule = rule_for(layer)
        if not layer.weights:
            role = "pass"
        elif rule is None or node.layer in g.opaque or rule.consumes:
            role = "in"
        else:
            role = "channel"
        for key in node.inputs:
            for c in set(g.classes_of(g.atoms_of[key]).tolist()):
                if c in owner and node.layer not in owner[c].sources:
                    owner[c].members.setdefault(node.layer, set()).add(role)
        for key in node.outputs:
            for c in set(g.classes_of(g.atoms_of[key]).tolist()):
                if c in owner and node.layer in owner[c].sources:
                    owner[c].members.setdefault(node.layer, set()).add("out")
