"""Parameter and MAC counts per layer, from shapes (batch of one). BatchNorm folds into the
preceding conv at export, so it is counted as parameters but zero MACs."""
from __future__ import annotations

import math

from edgeprune.keras import keras


def _prod(shape) -> int:
    return math.prod(int(d) for d in shape if d is not None)


def layer_macs(layer, in_shape, out_shape) -> int:
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        k = _prod(cfg["kernel_size"])
        groups = cfg.get("groups", 1) or 1
        return _prod(out_shape[1:]) * k * int(in_shape[-1]) // groups
    if kind == "Conv2DTranspose":
        return _prod(in_shape[1:]) * _prod(cfg["kernel_size"]) * int(out_shape[-1])
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return _prod(out_shape[1:]) * _prod(cfg["kernel_size"])
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        m = int(cfg.get("depth_multiplier", 1))
        spatial = _prod(out_shape[1:-1])
        return spatial * _prod(cfg["kernel_size"]) * int(in_shape[-1]) * m + spatial * int(in_shape[-1]) * m * int(out_shape[-1])
    if kind == "Dense":
        return _prod(in_shape[1:]) * int(out_shape[-1])
    return 0


def model_stats(model) -> dict:
    """{"params", "macs", "layers": [{name, type, output_shape, params, macs}]} for a tf-keras model."""
    from edgeprune.pruning.graph import flatten_model

    flat = flatten_model(model)
    rows = []
    for layer in flat.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        node = layer._inbound_nodes[0]
        in_shape = tuple(node.keras_inputs[0].shape) if node.keras_inputs else ()
        outs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
        out_shape = tuple(outs[0].shape)
        calls = len(layer._inbound_nodes)
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [d for d in out_shape[1:]],
            "params": int(layer.count_params()),
            "macs": int(layer_macs(layer, in_shape, out_shape)) * calls,
        })
    return {"params": int(sum(r["params"] for r in rows)), "macs": int(sum(r["macs"] for r in rows)), "layers": rows}
