"""Build the smaller model: every layer's config and weights shrunk to the kept channels."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from edgeprune.keras import keras
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.rules import rule_for


def keep_mask(g: ChannelGraph, key, removed: set[int]) -> np.ndarray:
    if not removed:
        return np.ones(len(g.atoms_of[key]), dtype=bool)
    return np.array([g.cls(int(a)) not in removed for a in g.atoms_of[key]], dtype=bool)


def shrink_model(g: ChannelGraph, removed: set[int], name: str | None = None):
    """A new plain tf-keras model without the `removed` channel classes, weights copied."""
    cfg = g.model.get_config()
    if name:
        cfg["name"] = name
    new_weights: dict[str, list[np.ndarray]] = {}
    for entry in cfg["layers"]:
        layer = g.layer(entry["name"])
        if isinstance(layer, keras.layers.InputLayer):
            continue
        weights = layer.get_weights()
        if layer.name in g.opaque:  # kept intact on both sides
            new_weights[layer.name] = weights
            continue
        node = g.nodes_of(layer.name)[0]
        keep_in = keep_mask(g, node.inputs[0], removed) if node.inputs else np.ones(0, bool)
        keep_out = keep_mask(g, node.outputs[0], removed)
        if keep_in.all() and keep_out.all():
            new_weights[layer.name] = weights
            continue
        entry["config"], new_weights[layer.name] = rule_for(layer).shrink(
            layer, entry["config"], weights, keep_in, keep_out)
    model = keras.Model.from_config(cfg)
    for layer in model.layers:
        if layer.name in new_weights and new_weights[layer.name]:
            layer.set_weights(new_weights[layer.name])
    return model


def _zeroed_weights(g: ChannelGraph, removed: set[int]) -> dict[str, list]:
    """layer name -> its weights with the removed channels' contributions zeroed (changed layers only)."""
    out: dict[str, list] = {}
    if not removed:
        return out
    for node in g.nodes:
        if not node.inputs or node.layer in g.opaque:
            continue
        layer = g.layer(node.layer)
        if not layer.weights:
            continue
        drop_in = ~keep_mask(g, node.inputs[0], removed)
        drop_out = ~keep_mask(g, node.outputs[0], removed)
        if not (drop_in.any() or drop_out.any()):
            continue
        w = out.get(layer.name) or layer.get_weights()
        out[layer.name] = rule_for(layer).zero(layer, w, drop_in, drop_out)
    return out


@contextmanager
def zeroed_in_place(g: ChannelGraph, removed: set[int]):
    """The graph's own (flat) model with removed channels feeding zeros into every consumer,
    restored on exit.  Pruned and zeroed models must compute the same function."""
    changed = _zeroed_weights(g, removed)
    saved = {name: g.layer(name).get_weights() for name in changed}
    try:
        for name, w in changed.items():
            g.layer(name).set_weights(w)
        yield g.model
    finally:
        for name, w in saved.items():
            g.layer(name).set_weights(w)


def zero_removed_contributions(g: ChannelGraph, removed: set[int]):
    """A copy of the (flat) original where removed channels feed zeros into every consumer."""
    model = keras.Model.from_config(g.model.get_config())
    changed = _zeroed_weights(g, removed)
    for layer in model.layers:
        w = changed.get(layer.name) or g.layer(layer.name).get_weights()
        if w:
            layer.set_weights(w)
    return model
