"""The equivalence check: the pruned model must compute what the original computes with the
removed channels' contributions zeroed.

It compares pre-activation outputs (logits: the output layer with its activation taken off), not
softmax probabilities, which on an untrained or saturated model barely move whatever the surgery
did.  The tolerance is relative to the logits' scale.  A model with several outputs is checked
output by output, each against its own scale; the summary names the worst one.

It also says when the check is weak, i.e. proves little even when it passes: when the outputs
hardly depend on the input (a broken surgery can hide), or when the logits are tiny, below about ten
float32 rounding steps of a value near 1 (an untrained Keras MobileNetV3 on random inputs gives
~1e-11: the model computes next to nothing there).  Real inputs (``--data``) or a trained model fix both.
"""
from __future__ import annotations

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras
from edgeprune.pruning.graph import build_graph
from edgeprune.pruning.plan import PrunePlan, classes_from_plan
from edgeprune.pruning.surgery import zeroed_in_place

WEAK_DEPENDENCE = 1e-3   # outputs' spread across inputs below this share of their scale: weak check
TINY_SCALE = 1e-6        # logits below this (~8 float32 rounding steps on values of order 1): weak check
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
        scaled = f" ({dataset.describe_scaling()})" if hasattr(dataset, "describe_scaling") else ""
        return dataset.x_val[:n], f"validation inputs of {data_name or 'the dataset'}{scaled}"
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


def _output_names(model) -> list[str]:
    outs = _as_list(model.outputs)
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == len(outs) else [f"output {i}" for i in range(len(outs))]


def _compare(name: str, ref, got, ref_logits, got_logits, rtol: float) -> dict:
    """One output: its logits within `rtol` of their own scale, its final values within `rtol` (of max(1, scale))."""
    final_diff = float(np.max(np.abs(ref - got)))
    final_scale = float(np.max(np.abs(ref)))
    scale = float(np.max(np.abs(ref_logits)))
    diff = float(np.max(np.abs(ref_logits - got_logits)))
    samples = len(ref_logits)
    spread = float(np.std(ref_logits, axis=0).mean()) if samples > 1 else 0.0
    dependence = spread / scale if scale > 0 else 0.0
    tol = rtol * max(scale, 1e-12)
    weak = []
    if scale < TINY_SCALE:
        weak.append(f"are tiny (largest {scale:.1e}, below {TINY_SCALE:g}, about 10 float32 rounding steps of a "
                    f"value near 1: the model computes next to nothing on these inputs)")
    if dependence < WEAK_DEPENDENCE:
        weak.append(f"barely depend on the input (spread across the {samples} inputs is {dependence:.1e} of "
                    f"their scale)")
    return {"output": name, "passed": bool(diff <= tol and final_diff <= rtol * max(1.0, final_scale)),
            "max_abs_diff": diff, "output_scale": scale, "relative_diff": diff / scale if scale > 0 else 0.0,
            "tolerance": tol, "output_max_abs_diff": final_diff, "input_dependence": dependence,
            "weak": bool(weak), "weak_reasons": weak, "_excess": diff / tol}


def _weak_note(per_output: list[dict], inputs: str) -> str:
    several = len(per_output) > 1
    reasons = "; ".join(f"{'output ' + repr(o['output']) + ' values' if several else 'the outputs'} {r}"
                        for o in per_output for r in o["weak_reasons"])
    fix = ("pass real inputs with --data (the validation images) or verify a trained model"
           if inputs.startswith("random") else "verify a trained model on these inputs")
    return f"the check is weak here, equal outputs prove little: {reasons}; {fix}"


def verify_pruning(original, pruned, plan: PrunePlan, x, *, rtol: float = 1e-4, inputs: str = "given inputs") -> dict:
    """Compare `pruned` with the zeroed original on `x`, output by output; returns the summary (also put
    in ``plan.verify``) or raises EdgepruneError when an output differs beyond `rtol` of its scale.

    The summary's top-level numbers are those of the worst output (``worst_output``); ``outputs`` has
    each output's; ``weak`` (with a ``note`` saying why and what to do) when the check proves little."""
    g = _graph_for(original, plan)
    removed = classes_from_plan(g, plan)
    names = _output_names(original)
    with zeroed_in_place(g, removed) as zeroed:
        probe, took_off = _outputs_and_logits(zeroed)
        ref = _run(probe, x)
    probe, _ = _outputs_and_logits(pruned)
    got = _run(probe, x)
    k = len(ref) // 2
    per_output = [_compare(names[i], ref[i], got[i], ref[k + i], got[k + i], rtol) for i in range(k)]
    worst = max(per_output, key=lambda o: (not o["passed"], o["_excess"]))
    for o in per_output:
        del o["_excess"]
    samples = len(ref[k])
    summary = {
        "passed": all(o["passed"] for o in per_output),
        "compared": "pre-activation outputs (logits)" if took_off else "outputs (no output activation)",
        "inputs": inputs, "samples": int(samples),
        "max_abs_diff": worst["max_abs_diff"], "output_scale": worst["output_scale"],
        "relative_diff": worst["relative_diff"], "tolerance": worst["tolerance"], "rtol": rtol,
        "output_max_abs_diff": max(o["output_max_abs_diff"] for o in per_output),
        "input_dependence": min(o["input_dependence"] for o in per_output),
        "weak": any(o["weak"] for o in per_output),
        "worst_output": worst["output"], "outputs": per_output,
        "removed_channels": int(plan.removed_channels),
    }
    if summary["weak"]:
        summary["note"] = _weak_note(per_output, inputs)
    plan.verify = summary
    if not summary["passed"]:
        which = f" of output '{worst['output']}'" if len(per_output) > 1 else ""
        raise EdgepruneError(
            f"pruned model differs from the zeroed original by {worst['max_abs_diff']:.3g} on its "
            f"{summary['compared']}{which} ({worst['relative_diff']:.2g} of their scale {worst['output_scale']:.3g}; "
            f"tolerance {rtol:g} of the scale)",
            "this is an engine bug: please report the model",
        )
    return summary
