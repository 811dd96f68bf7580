"""Int8 weight storage for ONNX files converted from QAT models.

tf2onnx folds each weight fake-quant of a tfmot model into a *float* constant whose values sit on
the int8 grid (and folds a following BatchNormalization in too, which rescales each output channel
but keeps it on a grid).  So the "int8" file was as large as the float one.  `store_int8_weights`
turns every such constant into an int8 initializer and a per-channel DequantizeLinear: the file
shrinks ~4× and the dequantized weights are the same numbers (to float rounding).  A constant is
replaced only when each of its channels is exactly ``scale × integer`` with |integer| ≤ 127; any
other constant stays float, so nothing a layer computes can change.
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

EXACT = 1e-6  # allowed |q·s − w| per channel, relative to the channel's max |w| (float rounding)
QMAX = 127


def _weight_axis(node) -> tuple[int, int] | None:
    """(input index of the weight, its output-channel axis) for ops whose weight is worth storing int8."""
    if node.op_type == "Conv":
        return 1, 0
    if node.op_type == "ConvTranspose":
        return 1, 1
    if node.op_type == "MatMul":
        return 1, -1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 1, 0 if trans_b else 1
    return None


def grid_int8(w: np.ndarray, axis: int):
    """(int8 values, float32 scale) when `w` is exactly their product, else None.

    Each channel along `axis` takes the finest grid that holds it: scale = max|w| / k for the
    largest k ≤ 127 that makes every value an integer multiple.  When one scale holds the whole
    tensor (per-tensor quantized weights) the scale is a scalar.
    """
    v = np.moveaxis(w.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
    distinct = 1 + (np.diff(np.sort(v, axis=1), axis=1) > 0).sum(axis=1)
    if distinct.max(initial=0) > 2 * QMAX + 1:
        return None  # more distinct values than an int8 grid has: a float weight
    peak = np.abs(v).max(axis=1)
    scale = np.ones(len(v))
    q = np.zeros(v.shape)
    pending = peak > 0
    for k in range(QMAX, 0, -1):
        if not pending.any():
            break
        idx = np.flatnonzero(pending)
        s = (peak[idx] / k).astype(np.float32).astype(np.float64)
        cand = np.round(v[idx] / s[:, None])
        exact = (np.abs(cand * s[:, None] - v[idx]).max(axis=1) <= EXACT * peak[idx]) & (np.abs(cand).max(axis=1) <= QMAX)
        scale[idx[exact]], q[idx[exact]] = s[exact], cand[exact]
        pending[idx[exact]] = False
    if pending.any():
        return None
    single = scale[peak > 0].max() if (peak > 0).any() else 1.0
    whole = np.round(v / single)  # per-tensor quantized weights (Dense) need one scale, not one per channel
    if np.abs(whole * single - v).max() <= EXACT * peak.max() and np.abs(whole).max() <= QMAX:
        q, scale = whole, np.float32(single)
    q = np.moveaxis(q.reshape(np.moveaxis(w, axis, 0).shape), 0, axis)
    return q.astype(np.int8), np.asarray(scale, np.float32)


def store_int8_weights(proto) -> int:
    """Rewrite `proto` in place: grid-valued float weights become int8 + DequantizeLinear. Returns how many."""
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    axis_of: dict[str, int] = {}
    for node in graph.node:
        spec = _weight_axis(node)
        if spec and len(node.input) > spec[0] and node.input[spec[0]] in inits:
            axis_of.setdefault(node.input[spec[0]], spec[1])
    new_nodes = []
    for name, axis in axis_of.items():
        init = inits[name]
        w = numpy_helper.to_array(init)
        if name in graph_inputs or w.dtype != np.float32 or w.ndim < 2:
            continue
        axis %= w.ndim
        found = grid_int8(w, axis)
        if found is None:
            continue
        q, scale = found
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scale, f"{name}_scale"),
                                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero_point")])
        per_channel = {"axis": axis} if scale.ndim else {}
        new_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
                                          [name], name=f"{name}_DequantizeLinear", **per_channel))
    for node in reversed(new_nodes):  # constants first keeps the graph topologically sorted
        graph.node.insert(0, node)
    return len(new_nodes)
