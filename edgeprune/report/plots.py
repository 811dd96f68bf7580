"""Matplotlib figures for the HTML reports, rendered off-screen (Agg, no pyplot state).

Each function takes plain report data and returns a Figure; :func:`png_data_uri` embeds it.
"""
from __future__ import annotations

import base64
import io
import math

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from edgeprune.device_metric import TABLE_UNITS, cost as device_cost, row_metric
from edgeprune.report.pareto import pareto_front

DPI = 100
MARKERS = "osD^v<>PX*"


def png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, cols: int, w: float = 4.2, h: float = 3.2):
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(w * cols, h * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def tradeoff_figure(rows: list[dict], cost: str, group=lambda r: "") -> Figure | None:
    """Test accuracy vs the device's cost metric (cost="device": the estimated board time on
    emulated boards, p50 latency elsewhere) or file size (cost="size"), one panel per device.

    The marker says stage and format; `group(row)` picks the colour (compare reports pass the run
    name).  The Pareto front of each panel is drawn as a step line through its points.
    """
    def kind(r):
        return f"{r['stage']} {r['format']}" + (f"/{r['quant']}" if r.get("quant") not in (None, "none") else "")

    def cost_of(r):
        if cost == "device":
            return device_cost(r)
        return r["file_bytes"] / 1024 if r.get("file_bytes") is not None else None

    devices = sorted({r["device"] for r in rows if r.get("device")})
    if not devices:
        return None
    fig, axes = _grid(len(devices), 2, 5.5, 4.0)
    for ax, device in zip(axes, devices):
        pts = [r for r in rows if r.get("device") == device and cost_of(r) is not None and r.get("test_accuracy") is not None]
        kinds = sorted({kind(r) for r in pts})
        groups = sorted({group(r) for r in pts})
        for g_i, g in enumerate(groups):
            for k_i, k in enumerate(kinds):
                mine = [r for r in pts if group(r) == g and kind(r) == k]
                if mine:
                    color = f"C{(g_i if len(groups) > 1 else k_i) % 10}"
                    ax.scatter([cost_of(r) for r in mine], [r["test_accuracy"] for r in mine], color=color,
                               label=f"{g}: {k}" if g else k, marker=MARKERS[k_i % len(MARKERS)], s=50, zorder=3)
        front = pareto_front([(cost_of(r), r["test_accuracy"]) for r in pts])
        if front:
            xs = [cost_of(pts[i]) for i in front]
            ys = [pts[i]["test_accuracy"] for i in front]
            ax.step(xs, ys, where="post", color="0.3", linestyle="--", linewidth=1, label="Pareto front", zorder=2)
        emulated = any(r.get("emulated") for r in pts)
        ax.set_title(device + (" (emulated)" if emulated else ""))
        metric = row_metric(pts[0])
        ax.set_xlabel(f"{metric.label} ({metric.unit})" if cost == "device" else "file size (KiB)")
        ax.set_ylabel("test accuracy")
        if cost == "size":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy vs " + ("device cost" if cost == "device" else "file size") + " (up and left is better)")
    return fig


def _bars(layers: list[dict], key: str, ylabel: str, title: str, log: bool = False) -> Figure | None:
    rows = [l for l in layers if l.get(f"{key}_before") is not None]
    if not rows:
        return None
    fig = Figure(figsize=(max(6.0, 0.45 * len(rows) + 2), 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [l[f"{key}_before"] for l in rows], width=0.4, label="before")
    ax.bar([i + 0.2 for i in x], [l[f"{key}_after"] or 0 for l in rows], width=0.4, label="after")
    ax.set_xticks(list(x), [l["name"] for l in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return fig


def channels_figure(layers: list[dict]) -> Figure | None:
    with_channels = [l for l in layers if l.get("channels_before") is not None]
    return _bars(with_channels, "channels", "output channels", "channels per layer before/after pruning")


def macs_figure(layers: list[dict]) -> Figure | None:
    return _bars([l for l in layers if l["macs_before"]], "macs", "MACs (log)", "MACs per layer before/after pruning", log=True)


def weights_figure(hists: list[dict], before: str, after: str) -> Figure | None:
    """Per layer: |w| before (kept part and removed part stacked) and after pruning."""
    if not hists:
        return None
    fig, axes = _grid(len(hists), 3, 4.2, 3.0)
    for ax, h in zip(axes, hists):
        edges = h["bin_edges"]
        lefts, widths = edges[:-1], [b - a for a, b in zip(edges[:-1], edges[1:])]
        kept = [b - r for b, r in zip(h["before"], h["removed"])]
        ax.bar(lefts, kept, width=widths, align="edge", color="tab:blue", alpha=0.75, label=f"{before}, kept")
        ax.bar(lefts, h["removed"], width=widths, bottom=kept, align="edge", color="tab:red", alpha=0.75,
               label=f"{before}, removed")
        ax.stairs(h["after"], edges, color="black", linewidth=1.2, label=after)
        ax.set_title(f"{h['layer']} ({h['type']}): {h['count_before']:,} → {h['count_after']:,}", fontsize=9)
        ax.set_xlabel("|w|", fontsize=8)
        ax.set_ylabel("weights", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"kernel weight magnitudes: {before} vs {after}")
    return fig


def sensitivity_figure(sens: dict) -> Figure | None:
    if not sens or not sens.get("curves"):
        return None
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for k, (group, curve) in enumerate(sens["curves"].items()):
        pts = [(r, a) for r, a in zip(sens["ratios"], curve) if a is not None]
        ax.plot([0.0] + [p[0] for p in pts], [sens["baseline_val_accuracy"]] + [p[1] for p in pts],
                marker=MARKERS[k % len(MARKERS)], label=group)
    ax.axhline(sens["baseline_val_accuracy"], color="0.5", linestyle=":", label="unpruned")
    ax.set_xlabel("fraction of the group's channels removed")
    ax.set_ylabel("val accuracy")
    ax.set_title("sensitivity: each group pruned alone")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


def training_figure(training: list[dict]) -> Figure | None:
    curves = [c for c in training if c["history"].get("accuracy") or c["history"].get("val_accuracy")]
    if not curves:
        return None
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    offset = 0
    for c in curves:
        h = c["history"]
        n = max(len(h.get("accuracy", [])), len(h.get("val_accuracy", [])))
        epochs = list(range(offset + 1, offset + n + 1))
        for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
            if h.get(key):
                ax.plot(epochs[:len(h[key])], h[key], style, marker="o", label=f"{c['step']} {key.replace('_', ' ')}")
        offset += n
    ax.set_xlabel("epoch (steps in order)")
    ax.set_ylabel("accuracy")
    ax.set_title("training curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def device_cost_figure(dc: dict) -> Figure | None:
    """Bars per layer, before and after (log scale: the first conv can dwarf the rest)."""
    unit = TABLE_UNITS.get(dc["metric"], dc["metric"])
    layers = [{"name": l["layer"], "cost_before": l["before"], "cost_after": l["after"]} for l in dc["layers"]
              if l["before"] is not None]
    return _bars(layers, "cost", f"{unit} (log)", f"where the time goes on {dc['device']} ({dc['precision']})", log=True)
