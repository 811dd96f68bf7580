"""Channel importance criteria, one small function each, gathered in ``CRITERIA``.

A criterion returns ``{layer name: (atoms, scores)}``: the atoms a layer touches and one
non-negative score per atom (higher = more important).  :func:`class_scores` normalises each
layer's scores (so layers of different scale are comparable) and aggregates them per channel
(sum/mean/max over the group's members): a group's importance is the aggregate of its members'.
Data-driven criteria receive ``dataset`` (validation batches only, never the test split).

Weights: l1, l2, bn_gamma, random.  Data: taylor (|activation × gradient|), mean_activation,
apoz (1 − average percentage of zeros after the ReLU).  ``threshold_<base>[:k=K]`` ranks a group's
statistical outliers (below mean − k·std) before every ordinary channel.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from edgeprune.criterion_names import CRITERIA as NAMES, DATA_CRITERIA as NAMED_DATA_CRITERIA
from edgeprune.criterion_names import THRESHOLD_K, THRESHOLD_PREFIX, parse_criterion
from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras
from edgeprune.losses import label_nll, output_kind
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.groups import dependency_groups
from edgeprune.pruning.rules import rule_for

Criterion = Callable[..., dict]
CRITERIA: dict[str, Criterion] = {}
DATA_CRITERIA: set[str] = set()


def register(name: str, needs_data: bool = False):
    if name not in NAMES or needs_data != (name in NAMED_DATA_CRITERIA):
        raise ValueError(f"criterion '{name}' must be listed in edgeprune.criterion_names (needs data: {needs_data})")

    def deco(fn):
        CRITERIA[name] = fn
        if needs_data:
            DATA_CRITERIA.add(name)
        return fn

    return deco


def _out_filters(g: ChannelGraph):
    """(layer, atoms, 2-D kernel with one column per output channel) for every source layer."""
    for name, atoms in g.source_atoms.items():
        if not g.has_layer(name) or name in g.opaque:
            continue
        layer = g.layer(name)
        rule = rule_for(layer)
        w = layer.get_weights()
        kernel = rule.filters(layer, w) if rule is not None and w else None
        if kernel is not None:
            yield name, atoms, kernel


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


# --------------------------------------------------------------------------------------------
# data-driven criteria: activations (and gradients) on validation batches

ACTIVATION_LAYERS = ("ReLU", "LeakyReLU", "ELU", "PReLU", "Activation")
RELU_NAMES = ("relu", "relu6")
DATA_SAMPLES = 512   # validation images a data criterion looks at
DATA_BATCH = 128


def _is_relu(layer) -> bool:
    kind = type(layer).__name__
    if kind == "ReLU":
        return True
    act = layer.get_config().get("activation")
    return isinstance(act, str) and act in RELU_NAMES


def _consumers(g: ChannelGraph) -> dict:
    out: dict = {}
    for node in g.nodes:
        for key in node.inputs:
            out.setdefault(key, []).append(node)
    return out


def probe_point(g: ChannelGraph, name: str, consumers: dict | None = None) -> tuple[tuple, bool]:
    """(tensor key, follows_relu) of the channel values a source layer really hands on.

    Starts at the layer's output and walks a single-consumer chain of BatchNormalization and
    activation layers, stopping after the first activation: zeroing that tensor's channel is what
    removing the channel does.  ``follows_relu`` says whether the tensor is post-ReLU.
    """
    consumers = _consumers(g) if consumers is None else consumers
    key = g.nodes_of(name)[0].outputs[0]
    relu = _is_relu(g.layer(name))
    if relu:
        return key, True
    while True:
        nxt = consumers.get(key, [])
        if len(nxt) != 1 or not nxt[0].outputs:
            return key, relu
        kind = type(g.layer(nxt[0].layer)).__name__
        if kind == "BatchNormalization":
            key = nxt[0].outputs[0]
        elif kind in ACTIVATION_LAYERS:
            return nxt[0].outputs[0], _is_relu(g.layer(nxt[0].layer))
        else:
            return key, relu


def _tensor(g: ChannelGraph, key: tuple):
    node = g.layer(key[0])._inbound_nodes[key[1]]
    outs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
    return outs[key[2]]


def _validation_batches(dataset, max_samples: int = DATA_SAMPLES, batch: int = DATA_BATCH):
    x, y = dataset.x_val[:max_samples], dataset.y_val[:max_samples]
    if len(x) == 0:
        raise EdgepruneError("data-driven criteria need validation samples, the dataset has none",
                             "use a dataset with a validation split (val_fraction > 0)")
    for i in range(0, len(x), batch):
        yield x[i:i + batch], y[i:i + batch]


def _probe(g: ChannelGraph):
    """(names, keys, relu flags, a model returning every probe tensor and then the model output)."""
    consumers = _consumers(g)
    names, keys, relus = [], [], []
    for name, atoms, _k in _out_filters(g):
        if all(int(a) in g.pinned for a in atoms):
            continue  # e.g. the classifier: its channels are the model output and never pruned
        key, relu = probe_point(g, name, consumers)
        names.append(name)
        keys.append(key)
        relus.append(relu)

    outputs = [_tensor(g, k) for k in keys]
    model = keras.Model(g.model.inputs, outputs + [g.model.outputs[0]])
    return names, keys, relus, model


def _channel_stats(g: ChannelGraph, dataset, stat: str, max_samples: int = DATA_SAMPLES) -> dict:
    """Per probe tensor, accumulate a per-channel statistic over validation batches."""
    names, keys, relus, probe = _probe(g)
    kind = output_kind(g.model)
    sums = [0.0] * len(names)
    count = 0
    for xb, yb in _validation_batches(dataset, max_samples):
        xb = tf.convert_to_tensor(xb)
        if stat == "taylor":
            with tf.GradientTape() as tape:
                outs = probe(xb, training=False)
                acts, pred = outs[:-1], outs[-1]
                loss = label_nll(pred, yb, kind)
            grads = tape.gradient(loss, acts)
        else:
            outs = probe(xb, training=False)
            acts, grads = outs[:-1], [None] * len(names)
        for i, (a, gr) in enumerate(zip(acts, grads)):
            a = np.asarray(a, dtype=np.float64)
            a = a.reshape(a.shape[0], -1, a.shape[-1])              # (batch, positions, channels)
            if stat == "taylor":
                # first-order change of the loss when the channel is zeroed, per sample (Molchanov 2017/19)
                contrib = np.abs((a * np.asarray(gr, dtype=np.float64).reshape(a.shape)).sum(axis=1))
            elif stat == "mean_activation":
                contrib = np.abs(a).mean(axis=1)
            elif stat == "apoz":
                # fraction of positions a ReLU would leave at zero (post-ReLU tensors are ≥ 0 already)
                contrib = (a <= 0.0).mean(axis=1)
            else:
                raise ValueError(stat)
            sums[i] = sums[i] + contrib.sum(axis=0)
        count += len(xb)
    return {name: (g.atoms_of[key], np.asarray(s) / count) for name, key, s in zip(names, keys, sums)}


@register("taylor", needs_data=True)
def taylor(g: ChannelGraph, dataset=None, **_) -> dict:
    """First-order Taylor: |Σ activation × ∂loss/∂activation| per channel and sample, averaged."""
    return _channel_stats(g, dataset, "taylor")


@register("mean_activation", needs_data=True)
def mean_activation(g: ChannelGraph, dataset=None, **_) -> dict:
    """Mean |activation| of each channel after its BN and activation, on validation images."""
    return _channel_stats(g, dataset, "mean_activation")


@register("apoz", needs_data=True)
def apoz(g: ChannelGraph, dataset=None, **_) -> dict:
    """1 − APoZ: share of non-zero outputs after the channel's ReLU (Hu et al. 2016, Network Trimming).

    Channels not followed by a ReLU are scored as if one followed (values ≤ 0 count as zeros).
    """
    return {name: (atoms, 1.0 - z) for name, (atoms, z) in _channel_stats(g, dataset, "apoz").items()}


# --------------------------------------------------------------------------------------------
# statistical threshold on top of any base criterion

OUTLIER_FACTOR = 1e-6


def outlier_classes(g: ChannelGraph, class_score: dict[int, float], k: float) -> set[int]:
    """Classes whose score is below mean − k·std of the prunable channels of their dependency group."""
    out: set[int] = set()
    for grp in dependency_groups(g):
        chans = grp.prunable
        if len(chans) < 2:
            continue
        vals = np.array([class_score.get(c, 0.0) for c in chans])
        limit = vals.mean() - k * vals.std()
        out.update(c for c, v in zip(chans, vals) if v < limit)
    return out


def threshold(g: ChannelGraph, dataset=None, *, base: str, k: float = THRESHOLD_K, **kwargs) -> dict:
    """The base criterion, with statistical outliers (below mean − k·std in their group) ranked first.

    Within a group the order is the base order; the difference shows across groups (global
    pruning, residual groups aggregating several layers): an outlier channel of any group goes
    before every ordinary channel.  Outlier scores are scaled by 1e-6, so they keep their order.
    """
    per_layer = CRITERIA[base](g, dataset=dataset, **kwargs)
    flagged = outlier_classes(g, class_scores(g, per_layer), k)
    out = {}
    for name, (atoms, scores) in per_layer.items():
        scores = np.asarray(scores, dtype=np.float64).copy()
        mask = np.array([g.cls(int(a)) in flagged for a in np.asarray(atoms)], dtype=bool)
        scores[mask] *= OUTLIER_FACTOR
        out[name] = (atoms, scores)
    return out


def resolve_criterion(name: str) -> tuple[Criterion, dict, bool]:
    """(function, extra kwargs, needs data) for a criterion name.

    ``threshold_<base>`` and ``threshold_<base>:k=<float>`` wrap any registered base criterion.
    """
    base, k = parse_criterion(name)
    if k is None:
        return CRITERIA[base], {}, base in DATA_CRITERIA
    return (lambda g, dataset=None, **kw: threshold(g, dataset, base=base, k=k, **kw)), {}, base in DATA_CRITERIA


def criterion_names() -> list[str]:
    """Every name `prune(criterion=...)` accepts (threshold forms with the default k)."""
    return sorted(CRITERIA) + [THRESHOLD_PREFIX + b for b in sorted(CRITERIA)]


AGGREGATES = ("sum", "mean", "max")


def class_scores(g: ChannelGraph, per_layer: dict, aggregate: str = "mean") -> dict[int, float]:
    """Normalise each layer's scores by their mean, then aggregate per channel class (in one pass over all
    atoms: a wide model has tens of thousands of classes)."""
    if aggregate not in AGGREGATES:
        raise EdgepruneError(f"unknown aggregate '{aggregate}'", f"use one of {', '.join(AGGREGATES)}")
    classes, values = [], []
    for atoms, scores in per_layer.values():
        scores = np.asarray(scores, dtype=np.float64)
        mean = scores.mean() if scores.size else 0.0
        values.append(scores / mean if mean > 0 else scores)
        classes.append(g.classes_of(np.asarray(atoms)))
    if not classes:
        return {}
    cls, val = np.concatenate(classes), np.concatenate(values)
    ids, first, inv = np.unique(cls, return_index=True, return_inverse=True)
    if aggregate == "max":
        out = np.full(len(ids), -np.inf)
        np.maximum.at(out, inv, val)
    else:
        out = np.bincount(inv, weights=val, minlength=len(ids))
        if aggregate == "mean":
            out = out / np.bincount(inv, minlength=len(ids))
    order = np.argsort(first, kind="stable")  # classes in the order they first appear, as the layers list them
    return {int(ids[i]): float(out[i]) for i in order}


def scores_by_channel(g: ChannelGraph, scores: dict[int, float]) -> dict[str, float]:
    """Class scores keyed ``"layer:channel"`` (a channel of each class), which names the class in any copy of
    the model: the form in which one scoring is written once and shared, e.g. by a scan's trials."""
    return {"{}:{}".format(*g.atom_source[c]): float(s) for c, s in scores.items()}


def scores_from_channels(g: ChannelGraph, saved: dict[str, float]) -> dict[int, float]:
    """The inverse of :func:`scores_by_channel` on the graph `g` of a copy of the scored model."""
    out = {}
    for key, score in saved.items():
        layer, channel = key.rsplit(":", 1)
        atoms = g.source_atoms.get(layer)
        if atoms is None or int(channel) >= len(atoms):
            raise EdgepruneError(f"saved channel scores name {key}, which this model does not have",
                                 "score this model itself (no saved scores)")
        out[g.cls(int(atoms[int(channel)]))] = float(score)
    return out


def compute_scores(g: ChannelGraph, criterion: str, dataset=None, aggregate: str = "mean", **kwargs) -> dict[int, float]:
    fn, extra, needs_data = resolve_criterion(criterion)
    if needs_data and dataset is None:
        raise EdgepruneError(f"criterion '{criterion}' needs data", "pass a dataset (recipe `dataset:` or --data)")
    return class_scores(g, fn(g, dataset=dataset, **extra, **kwargs), aggregate)
