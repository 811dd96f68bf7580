"""Channel importance criteria, one small function each, gathered in ``CRITERIA``.

A criterion returns ``{layer name: (atoms, scores)}``: the atoms a layer touches and one
non-negative score per atom (higher = more important).  :func:`class_scores` normalises each
layer's scores (so layers of different scale are comparable) and aggregates them per channel
(sum/mean/max over the group's members): a group's importance is the aggregate of its members'.
Data-driven criteria receive ``dataset`` (validation batches only, never the test split).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.pruning.graph import ChannelGraph

Criterion = Callable[..., dict]
CRITERIA: dict[str, Criterion] = {}
DATA_CRITERIA: set[str] = set()


def register(name: str, needs_data: bool = False):
    def deco(fn):
        CRITERIA[name] = fn
        if needs_data:
            DATA_CRITERIA.add(name)
        return fn

    return deco


def _out_filters(g: ChannelGraph):
    """(layer, atoms, kernel with output channels on the last axis) for every source layer."""
    for name, atoms in g.source_atoms.items():
        if name not in {l.name for l in g.model.layers}:
            continue
        layer = g.layer(name)
        w = layer.get_weights()
        if not w:
            continue
        kind = type(layer).__name__
        kernel = w[1] if kind.startswith("SeparableConv") else w[0]
        if kind == "Conv2DTranspose":
            kernel = np.moveaxis(kernel, -2, -1)
        yield name, atoms, kernel.reshape(-1, kernel.shape[-1])


def _norm(g, p):
    return {name: (atoms, np.linalg.norm(k, ord=p, axis=0) if p != 1 else np.abs(k).sum(axis=0))
            for name, atoms, k in _out_filters(g)}


@register("l1")
def l1_norm(g: ChannelGraph, dataset=None, **_) -> dict:
    """L1 norm of each output filter (Li et al. 2017, Pruning Filters for Efficient ConvNets)."""
    return _norm(g, 1)


@register("l2")
def l2_norm(g: ChannelGraph, dataset=None, **_) -> dict:
    """L2 norm of each output filter."""
    return _norm(g, 2)


@register("bn_gamma")
def bn_gamma(g: ChannelGraph, dataset=None, **_) -> dict:
    """|γ| of the BatchNormalization that scales each channel (network slimming, Liu et al. 2017)."""
    out = {}
    for node in g.nodes:
        layer = g.layer(node.layer)
        if type(layer).__name__ == "BatchNormalization" and layer.scale:
            out[layer.name] = (g.atoms_of[node.inputs[0]], np.abs(layer.get_weights()[0]))
    if not out:
        raise EdgepruneError("criterion 'bn_gamma' needs BatchNormalization layers", "use --criterion l1")
    return out


@register("random")
def random_scores(g: ChannelGraph, dataset=None, seed: int = 0, **_) -> dict:
    """Uniform random scores: the baseline every criterion should beat."""
    rng = np.random.default_rng(seed)
    return {name: (atoms, rng.random(len(atoms))) for name, atoms, _ in _out_filters(g)}


AGGREGATES = {"sum": np.sum, "mean": np.mean, "max": np.max}


def class_scores(g: ChannelGraph, per_layer: dict, aggregate: str = "mean") -> dict[int, float]:
    """Normalise each layer's scores by their mean, then aggregate per channel class."""
    if aggregate not in AGGREGATES:
        raise EdgepruneError(f"unknown aggregate '{aggregate}'", f"use one of {', '.join(AGGREGATES)}")
    agg = AGGREGATES[aggregate]
    contributions: dict[int, list[float]] = {}
    for atoms, scores in per_layer.values():
        scores = np.asarray(scores, dtype=np.float64)
        mean = scores.mean() if scores.size else 0.0
        normed = scores / mean if mean > 0 else scores
        for a, s in zip(np.asarray(atoms), normed):
            contributions.setdefault(g.cls(int(a)), []).append(float(s))
    return {c: float(agg(v)) for c, v in contributions.items()}


def compute_scores(g: ChannelGraph, criterion: str, dataset=None, aggregate: str = "mean", **kwargs) -> dict[int, float]:
    if criterion not in CRITERIA:
        raise EdgepruneError(f"unknown criterion '{criterion}'", f"use one of {', '.join(sorted(CRITERIA))}")
    if criterion in DATA_CRITERIA and dataset is None:
        raise EdgepruneError(f"criterion '{criterion}' needs data", "pass a dataset (recipe `dataset:` or --data)")
    return class_scores(g, CRITERIA[criterion](g, dataset=dataset, **kwargs), aggregate)
