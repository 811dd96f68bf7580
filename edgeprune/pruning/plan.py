"""Which channels go: ratios → a :class:`PrunePlan` that is data (JSON) and replays on a fresh model.

The plan names removed channels by (source layer, output channel index), which is how a user
reads them and what survives a reload; replay maps them back onto the fresh model's classes.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune import fileio
from edgeprune.errors import EdgepruneError
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.groups import Group

PLAN_SCHEMA_VERSION = 1


@dataclass
class PrunePlan:
    model_name: str
    model_fingerprint: str
    settings: dict
    groups: list[dict] = field(default_factory=list)   # per group: id, sources, channels, kept, removed, scores
    removed: dict[str, list[int]] = field(default_factory=dict)  # source layer -> removed channel indices
    kept: list[dict] = field(default_factory=list)      # notes on groups kept whole, and why (pruning/kept.py)
    verify: dict | None = None                          # the equivalence check's summary (pruning/verify.py)
    graph: ChannelGraph | None = field(default=None, repr=False, compare=False)  # analysis it came from (not saved)

    def to_dict(self) -> dict:
        return {"schema_version": PLAN_SCHEMA_VERSION, "model_name": self.model_name,
                "model_fingerprint": self.model_fingerprint, "settings": self.settings,
                "groups": self.groups, "removed": self.removed, "kept": self.kept, "verify": self.verify}

    def save(self, path) -> Path:
        path = fileio.write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path) -> "PrunePlan":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EdgepruneError(f"cannot read prune plan {path}: {e}", "pass a plan.json written by `edgeprune prune --plan-out`") from None
        if d.get("schema_version") != PLAN_SCHEMA_VERSION:
            raise EdgepruneError(f"prune plan {path} has schema_version {d.get('schema_version')}", f"expected {PLAN_SCHEMA_VERSION}")
        return cls(d["model_name"], d["model_fingerprint"], d["settings"], d["groups"],
                   {k: list(v) for k, v in d["removed"].items()}, kept=d.get("kept", []), verify=d.get("verify"))

    @property
    def removed_channels(self) -> int:
        return sum(g["channels"] - g["kept"] for g in self.groups)


def model_fingerprint(model) -> str:
    """Architecture hash (layer names, types and weight shapes): a plan only replays on its model."""
    h = hashlib.sha256()
    for layer in model.layers:
        h.update(f"{layer.name}:{type(layer).__name__}:{[tuple(w.shape) for w in layer.weights]}".encode())
    return h.hexdigest()[:16]


def resolve_ratio(group: Group, ratio: float, overrides: dict[str, float]) -> float:
    """Per-group ratio: the first override whose regex matches one of the group's source layers."""
    for pattern, r in overrides.items():
        rx = re.compile(pattern)
        if any(rx.fullmatch(s) for s in group.sources):
            return float(r)
    return float(ratio)


def kept_count(n: int, remove: int, n_prunable: int, round_to: int, min_channels: int) -> int:
    """Channels kept after removing ~`remove` of `n`, rounded to a multiple of `round_to`."""
    kept = n - remove
    if round_to > 1:
        kept = max(round_to, int(round(kept / round_to)) * round_to)
    kept = max(kept, min_channels, n - n_prunable)
    return min(kept, n)


def select_channels(groups: list[Group], scores: dict[int, float], *, ratio: float, global_pruning: bool,
                    round_to: int = 1, min_channels: int = 1, overrides: dict | None = None,
                    max_group_ratio: float = 0.9) -> dict[int, list[int]]:
    """group id -> class ids to remove (the lowest-scoring prunable channels)."""
    overrides = overrides or {}
    for r in [ratio, *overrides.values()]:
        if not 0.0 <= r < 1.0:
            raise EdgepruneError(f"pruning ratio {r} is out of range", "use a fraction in [0, 1), e.g. 0.5")
    targets: dict[int, int] = {}
    if global_pruning:
        # rank every prunable channel by its score normalised within its group, drop the lowest
        pool = []
        for grp in groups:
            vals = [scores.get(c, 0.0) for c in grp.prunable]
            mean = float(np.mean(vals)) if vals and np.mean(vals) > 0 else 1.0
            pool.extend((scores.get(c, 0.0) / mean, grp.id, c) for c in grp.prunable)
        pool.sort()
        n_total = sum(grp.size for grp in groups if grp.prunable)
        budget = int(round(ratio * n_total))
        counts = {grp.id: 0 for grp in groups}
        limit = {grp.id: int(math.floor(max_group_ratio * grp.size)) for grp in groups}
        for _, gid, _c in pool:
            if budget <= 0:
                break
            if counts[gid] < limit[gid]:
                counts[gid] += 1
                budget -= 1
        targets = counts
    else:
        targets = {grp.id: int(round(resolve_ratio(grp, ratio, overrides) * grp.size)) for grp in groups}

    chosen: dict[int, list[int]] = {}
    for grp in groups:
        prunable = grp.prunable
        if not prunable:
            continue
        kept = kept_count(grp.size, targets.get(grp.id, 0), len(prunable), round_to, min_channels)
        n_remove = grp.size - kept
        if n_remove <= 0:
            continue
        order = sorted(prunable, key=lambda c: (scores.get(c, 0.0), c))
        chosen[grp.id] = order[:n_remove]
    return chosen


def build_plan(g: ChannelGraph, groups: list[Group], chosen: dict[int, list[int]], scores: dict[int, float],
               settings: dict, original_model) -> PrunePlan:
    removed_classes = {c for cs in chosen.values() for c in cs}
    removed: dict[str, list[int]] = {}
    for name, atoms in g.source_atoms.items():
        if not g.has_layer(name):
            continue
        idx = [i for i, c in enumerate(g.classes_of(atoms).tolist()) if c in removed_classes]
        if idx:
            removed[name] = idx
    group_rows = []
    for grp in groups:
        gone = chosen.get(grp.id, [])
        row = grp.to_dict()
        row.update({
            "kept": grp.size - len(gone),
            "removed_channels": [grp.channels.index(c) for c in gone],
            "removed_scores": [round(scores.get(c, 0.0), 6) for c in gone],
            "kept_score_mean": round(float(np.mean([scores.get(c, 0.0) for c in grp.channels if c not in gone] or [0.0])), 6),
        })
        group_rows.append(row)
    return PrunePlan(original_model.name, model_fingerprint(g.model), settings, group_rows, removed)


def classes_from_plan(g: ChannelGraph, plan: PrunePlan) -> set[int]:
    fp = model_fingerprint(g.model)
    if fp != plan.model_fingerprint:
        raise EdgepruneError(
            f"prune plan was made for another model (fingerprint {plan.model_fingerprint}, this model {fp})",
            "replay a plan only on a fresh copy of the model it was made from",
        )
    out = set()
    for name, idx in plan.removed.items():
        atoms = g.source_atoms.get(name)
        if atoms is None:
            raise EdgepruneError(f"prune plan names layer '{name}', which this model lacks", "use the plan's own model")
        out.update(g.cls(int(atoms[i])) for i in idx)
    return out
