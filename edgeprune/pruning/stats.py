"""Parameter and MAC counts per layer, from shapes (batch of one); each layer's rule counts its MACs.

A layer type without a rule has no known MAC count: it is reported as ``macs: null`` per layer
(and left out of the total) instead of silently as zero."""
from __future__ import annotations

from edgeprune.keras import keras
from edgeprune.pruning.graph import flatten_model
from edgeprune.pruning.rules import rule_for


def layer_macs(layer, in_shape, out_shape) -> int | None:
    """MACs of one call of `layer` (None when no rule knows the type)."""
    rule = rule_for(layer)
    return None if rule is None else int(rule.macs(layer, in_shape, out_shape))


def _own_nodes(model, layer) -> list:
    """The calls of `layer` inside `model` (a layer may also be called in other models)."""
    own = getattr(model, "_network_nodes", None)
    nodes = [n for i, n in enumerate(layer._inbound_nodes) if own is None or f"{layer.name}_ib-{i}" in own]
    return nodes or layer._inbound_nodes[:1]


def model_stats(model) -> dict:
    """{"params", "macs", "layers": [{name, type, output_shape, params, macs}]} for a tf-keras model."""
    flat = flatten_model(model, copy=False)
    rows = []
    for layer in flat.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        macs = 0
        nodes = _own_nodes(flat, layer)
        for node in nodes:
            in_shape = tuple(node.keras_inputs[0].shape) if node.keras_inputs else ()
            outs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
            m = layer_macs(layer, in_shape, tuple(outs[0].shape))
            macs = None if m is None or macs is None else macs + m
        node = nodes[0]
        outs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [d for d in tuple(outs[0].shape)[1:]],
            "params": int(layer.count_params()),
            "macs": macs,
        })
    return {"params": int(sum(r["params"] for r in rows)), "macs": int(sum(r["macs"] or 0 for r in rows)),
            "macs_unknown": [r["name"] for r in rows if r["macs"] is None], "layers": rows}


def graph_macs(g) -> dict[str, int]:
    """layer name -> MACs of all its calls in an analysed graph (unknown types count 0)."""
    out: dict[str, int] = {}
    for node in g.nodes:
        layer = g.layer(node.layer)
        m = layer_macs(layer, node.input_shapes[0] if node.input_shapes else (), node.output_shapes[0]) or 0
        out[node.layer] = out.get(node.layer, 0) + m
    return out
