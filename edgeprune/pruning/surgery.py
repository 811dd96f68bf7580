"""Build the smaller model: every layer's config and weights shrunk to the kept channels."""
from __future__ import annotations

import numpy as np

from edgeprune.keras import keras
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.rules import rule_for


def keep_mask(g: ChannelGraph, key, removed: set[int]) -> np.ndarray:
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
        node = g.nodes_of(layer.name)[0]
        rule = rule_for(layer)
        weights = layer.get_weights()
        if rule is None:  # protected opaque layer: untouched
            new_weights[layer.name] = weights
            continue
        keep_in = keep_mask(g, node.inputs[0], removed) if node.inputs else np.ones(0, bool)
        keep_out = keep_mask(g, node.outputs[0], removed)
        entry["config"], new_weights[layer.name] = rule.shrink(layer, entry["config"], weights, keep_in, keep_out)
    model = keras.Model.from_config(cfg)
    for layer in model.layers:
        if layer.name in new_weights and new_weights[layer.name]:
            layer.set_weights(new_weights[layer.name])
    return model


def zero_removed_contributions(g: ChannelGraph, removed: set[int]):
    """A copy of the (flat) original where removed channels feed zeros into every consumer.

    Pruned and zeroed models must compute the same function: this is the equivalence check.
    """
    model = keras.Model.from_config(g.model.get_config())
    for layer in model.layers:
        src = g.layer(layer.name)
        weights = src.get_weights()
        if weights:
            layer.set_weights(weights)
    for node in g.nodes:
        layer = model.get_layer(node.layer)
        kind = type(layer).__name__
        if not node.inputs or kind not in _CONSUMERS:
            continue
        drop = ~keep_mask(g, node.inputs[0], removed)
        if not drop.any():
            continue
        w = layer.get_weights()
        w = _CONSUMERS[kind](w, drop, layer)
        layer.set_weights(w)
    return model


def _zero_conv(w, drop, layer):
    if (layer.get_config().get("groups", 1) or 1) > 1:
        return w
    w[0] = w[0].copy()
    w[0][..., drop, :] = 0.0
    return w


def _zero_dense(w, drop, layer):
    w[0] = w[0].copy()
    w[0][drop, :] = 0.0
    return w


def _zero_conv_transpose(w, drop, layer):
    w[0] = w[0].copy()
    w[0][..., drop] = 0.0
    return w


def _zero_separable(w, drop, layer):
    m = int(layer.get_config().get("depth_multiplier", 1))
    w[1] = w[1].copy()
    w[1][..., np.repeat(drop, m), :] = 0.0
    return w


_CONSUMERS = {
    "Conv1D": _zero_conv, "Conv2D": _zero_conv, "Conv3D": _zero_conv,
    "Conv2DTranspose": _zero_conv_transpose,
    "Dense": _zero_dense,
    "SeparableConv1D": _zero_separable, "SeparableConv2D": _zero_separable,
}
