"""The equivalence check: the pruned model must compute what the original computes with the
removed channels' contributions zeroed.

It compares pre-activation outputs (logits: the output layer with its activation taken off), not
softmax probabilities, which on an untrained or saturated model barely move whatever the surgery
did.  The tolerance is relative to the logits' scale.  It also measures how much the outputs
depend on the input at all: when they hardly do, a broken surgery can hide, and the summary says
the check is weak there.
"""
from __future__ import annotations

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras
from edgeprune.pruning.graph import build_graph
from edgeprune.pruning.plan import PrunePlan, classes_from_plan
from edgeprune.pruning.surgery import zeroed_in_place

WEAK_DEPENDENCE = 1e-3   # outputs' spread across inputs below this share of their scale: weak check
BATCH = 32


def _as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _pre_activation(t):
    """(tensor before the output activation, whether an activation was taken off)."""
    h = t._keras_history
    layer = h.layer
    node = layer._inbound_nodes[h.node_index]
    cfg = layer.get_config()
    inputs = node.input_tensors
    if type(layer).__name__ in ("Activation", "Softmax"):
        return (inputs if not isinstance(inputs, list) else inputs[0]), True
    act = cfg.get("activation")
    if act in (None, "linear") or not layer.weights:
        return t, False
    linear = type(layer).from_config(dict(cfg, activation="linear", name=f"{layer.name}__logits"))
    out = linear(inputs)
    linear.set_weights(layer.get_weights())
    return out, True


def _outputs_and_logits(model):
    """A model returning [outputs..., pre-activation outputs...], and whether any activation was removed."""
    outs = _as_list(model.outputs)
    pres = [_pre_activation(t) for t in outs]
    return keras.Model(model.inputs, outs + [p for p, _ in pres]), any(f for _, f in pres)


def _run(model, x) -> list[np.ndarray]:
    parts = []
    n = len(x[0]) if isinstance(x, (list, tuple)) else len(x)
    for i in range(0, n, BATCH):
        xb = [a[i:i + BATCH] for a in x] if isinstance(x, (list, tuple)) else x[i:i + BATCH]
        parts.append([np.asarray(y, dtype=np.float64) for y in _as_list(model(xb, training=False))])
    return [np.concatenate(p) for p in zip(*parts)]


def verify_inputs(model, dataset=None, data_name: str | None = None, n: int = 64, seed: int = 0):
    """(inputs, description) for the check: the dataset's validation images when there is a dataset
    (real inputs make the check meaningful), else uniform random values in [0, 1)."""
    if dataset is not None and len(dataset.x_val):
        return dataset.x_val[:n], f"validation inputs of {data_name or 'the dataset'}"
    shape = tuple(d or 1 for d in model.input_shape[1:])
    dtype = model.inputs[0].dtype
    rng = np.random.default_rng(seed)
    if getattr(dtype, "is_integer", False):
        return rng.integers(0, 2, (16, *shape)).astype(dtype.name), "random integer inputs"
    return rng.random((16, *shape)).astype("float32"), "random inputs (no --data given)"


def _graph_for(original, plan: PrunePlan):
    if plan.graph is not None and getattr(plan, "_source", None) == id(original):
        return plan.graph
    return build_graph(original, protect=plan.settings.get("protect", ()))


def verify_pruning(original, pruned, plan: PrunePlan, x, *, rtol: float = 1e-4, inputs: str = "given inputs") -> dict:
    """Compare `pruned` with the zeroed original on `x`; returns the summary (also put in
    ``plan.verify``) or raises EdgepruneError when they differ beyond `rtol` of the output scale."""
    g = _graph_for(original, plan)
    removed = classes_from_plan(g, plan)
    with zeroed_in_place(g, removed) as zeroed:
        probe, took_off = _outputs_and_logits(zeroed)
        ref = _run(probe, x)
    probe, _ = _outputs_and_logits(pruned)
    got = _run(probe, x)
    k = len(ref) // 2
    final_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref[:k], got[:k]))
    final_scale = max(float(np.max(np.abs(a))) for a in ref[:k])
    logits_ref, logits_got = ref[k:], got[k:]
    scale = max(float(np.max(np.abs(a))) for a in logits_ref)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(logits_ref, logits_got))
    samples = len(logits_ref[0])
    spread = max(float(np.std(a, axis=0).mean()) for a in logits_ref) if samples > 1 else 0.0
    dependence = spread / scale if scale > 0 else 0.0
    tol = rtol * max(scale, 1e-12)
    summary = {
        "passed": bool(diff <= tol and final_diff <= rtol * max(1.0, final_scale)),
        "compared": "pre-activation outputs (logits)" if took_off else "outputs (no output activation)",
        "inputs": inputs, "samples": int(samples),
        "max_abs_diff": diff, "output_scale": scale, "relative_diff": diff / scale if scale > 0 else 0.0,
        "tolerance": tol, "rtol": rtol, "output_max_abs_diff": final_diff,
        "input_dependence": dependence, "weak": bool(dependence < WEAK_DEPENDENCE),
        "removed_channels": int(plan.removed_channels),
    }
    if summary["weak"]:
        summary["note"] = (f"the outputs barely depend on the input (spread across the {samples} inputs is "
                           f"{dependence:.1e} of their scale): the check is weak here; pass real inputs (--data)")
    plan.verify = summary
    if not summary["passed"]:
        raise EdgepruneError(
            f"pruned model differs from the zeroed original by {diff:.3g} on its {summary['compared']} "
            f"({summary['relative_diff']:.2g} of their scale {scale:.3g}; tolerance {rtol:g} of the scale)",
            "this is an engine bug: please report the model",
        )
    return summary
