"""Weight-magnitude histograms of each kernel before and after pruning (the report's weights section).

Computed from the two models in memory when the prune (or search) step runs and written to the run
directory, so the report needs no TensorFlow.

Structured pruning slices whole channels out of the kernels and copies the rest unchanged, so the
pruned kernel's weights are a subset of the original's: on shared bin edges, the removed weights'
histogram is exactly before − after.
"""
from __future__ import annotations

import numpy as np

BINS = 24
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


def kernels(model) -> dict[str, tuple[str, np.ndarray]]:
    """layer name -> (layer type, |kernel| flattened), for every layer that has a kernel."""
    out = {}
    for layer in _flat_layers(model):
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if short in KERNEL_NAMES:
                key = layer.name if short == "kernel" else f"{layer.name}.{short}"
                out[key] = (type(layer).__name__, np.abs(np.asarray(w.numpy(), dtype=np.float64)).ravel())
    return out


def _flat_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # nested sub-model
            yield from _flat_layers(layer)
        else:
            yield layer


def histograms(before: dict, after: dict, bins: int = BINS) -> tuple[list[dict], list[str]]:
    """Per-layer histogram rows (schema WeightHistogram) and notes on anything inconsistent."""
    rows, notes = [], []
    for name, (kind, wb) in before.items():
        top = float(wb.max()) if wb.size else 1.0
        edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
        hb, _ = np.histogram(wb, bins=edges)
        wa = after.get(name, (kind, np.zeros(0)))[1]
        ha, _ = np.histogram(np.clip(wa, 0.0, edges[-1]), bins=edges)
        removed = hb - ha
        if (removed < 0).any():
            notes.append(f"weights of {name} changed between the stages (not a pure channel slice): "
                         "its 'removed' histogram is clipped at 0")
            removed = np.clip(removed, 0, None)
        rows.append({
            "layer": name, "type": kind, "bin_edges": [round(float(e), 7) for e in edges],
            "before": hb.astype(int).tolist(), "after": ha.astype(int).tolist(), "removed": removed.astype(int).tolist(),
            "count_before": int(wb.size), "count_after": int(wa.size),
            "mean_abs_before": float(wb.mean()) if wb.size else 0.0,
            "mean_abs_after": float(wa.mean()) if wa.size else None,
        })
    return rows, notes


def weight_histograms(before, after, bins: int = BINS) -> tuple[list[dict], list[str]]:
    """Compare the kernels of two models (before and after pruning)."""
    return histograms(kernels(before), kernels(after), bins)
