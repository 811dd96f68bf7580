"""BENCHMARKS.md and the Pareto plot, generated only from the run's summary JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgeprune.harness.metric import cost, device_metric
from edgeprune.report.pareto import pareto_front


def _f(x, fmt="{:.2f}"):
    return "—" if x is None else fmt.format(round(x, 6) + 0.0)  # + 0.0: no "-0.00"


def _int(x):
    return "—" if x is None else f"{int(x):,}"


def plot_axis(summary: dict) -> tuple[str | None, str]:
    """(device, label) for the plot's x axis: the emulated aarch64 board when measured, else the host;
    the axis is that device's metric (edgeprune.harness.metric)."""
    emulated, host = summary.get("emulated_device"), summary.get("host_device")
    device = emulated or host
    metric = device_metric(bool(emulated))
    return device, f"{device} {metric.label} ({metric.unit}{', emulated' if emulated else ''})"


def _cost(timing: dict, emulated: bool) -> float | None:
    """A variant's cost on a device, by the one device metric (bench timing rows name p50 `p50_ms`)."""
    return cost({"latency_ms": {"p50": timing.get("p50_ms")}, **timing}, device_metric(emulated))


def write_plot(summary: dict, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device, label = plot_axis(summary)
    groups = summary["groups"]
    if not device or not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, g in zip(axes[0], groups):
        pts = []
        for v in g["variants"]:
            t = v.get("timing", {}).get(device)
            if not t:
                continue
            x, y = _cost(t, device == summary.get("emulated_device")), v["test_accuracy"] * 100
            if x is None:
                continue
            pts.append((x, y))
            ours = v["variant"].startswith("edgeprune-")
            ax.scatter([x], [y], marker="*" if ours else "o", s=90 if ours else 40,
                       color="tab:red" if ours else "tab:blue", zorder=3)
            ax.annotate(v["variant"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = [pts[i] for i in pareto_front(pts)]
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="gray", lw=1, zorder=2)
        ax.set_title(f"{g['model']} / {g['dataset']}")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _variant_table(g: dict, host: str | None, emulated: str | None) -> list[str]:
    head = ["variant", "test acc", "Δ acc vs float (pt)", "file bytes", "gzip bytes", "params", "MACs",
            "weight sparsity", "× smaller than float"]
    if host:
        head += [f"{host} p50 / p90 (ms)", f"{host} × faster than ptq-int8"]
    if emulated:
        head += [f"{emulated} p50 (ms)", f"{emulated} instr / inference", "× fewer instr than ptq-int8"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in g["variants"]:
        r = v["ratios"]
        row = [f"**{v['variant']}**" if v["variant"] == g.get("judged") else v["variant"],
               f"{v['test_accuracy'] * 100:.2f}%", _f(r.get("acc_delta_pt_vs_baseline"), "{:+.2f}"),
               _int(v["file_bytes"]), _int(v["gzip_bytes"]), _int(v["params"]), _int(v["macs"]),
               f"{v['weight_sparsity'] * 100:.0f}%", _f(r.get("size_x_vs_baseline"), "{:.1f}×")]
        if host:
            t = v.get("timing", {}).get(host) or {}
            row += [f"{_f(t.get('p50_ms'), '{:.3f}')} / {_f(t.get('p90_ms'), '{:.3f}')}",
                    _f(r.get(f"{host}_speedup_vs_ptq"), "{:.2f}×")]
        if emulated:
            t = v.get("timing", {}).get(emulated) or {}
            row += [_f(t.get("p50_ms"), "{:.2f}"), _int(t.get("instructions_per_inference")),
                    _f(r.get(f"{emulated}_instr_x_vs_ptq"), "{:.2f}×")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _target_lines(g: dict) -> list[str]:
    lines = [f"Targets, judged on **{g.get('judged') or '—'}** (the most-pruned edgeprune level within the "
             "accuracy budget, else the most accurate one):", "",
             "| target | measured | met | margin |", "|---|---|---|---|"]
    for t in g.get("targets", []):
        if t["measured"] is None:
            lines.append(f"| {t['target']} | not measured | — | — |")
            continue
        unit = t["unit"]
        value = round(t["measured"], 6) + 0.0  # no "-0.00"
        measured = f"{value:.2f} {unit}" if unit == "pt" else f"{value:.2f}{unit}"
        if t["met"] is None:
            lines.append(f"| {t['target']} | {measured} | not judged | {t.get('note', '—')} |")
            continue
        if unit == "pt":
            margin = f"{t['margin']:.2f} pt to spare" if t["margin"] >= 0 else f"{-t['margin']:.2f} pt over"
        else:
            margin = f"{t['margin']:.2f}× the target"
        lines.append(f"| {t['target']} | {measured} | {'yes' if t['met'] else '**no**'} | {margin} |")
    return lines


def render_markdown(summary: dict, plot_rel: str | None) -> str:
    s = summary["settings"]
    host, emulated = summary.get("host_device"), summary.get("emulated_device")
    env = summary.get("environment", {})
    out = [
        "# Benchmarks: edgeprune vs the standard recipes",
        "",
        f"Generated by `{summary['command']}` on {summary['date']} — do not edit by hand. "
        f"Raw numbers: `{summary['json_name']}`.",
        "",
        "Every variant of a model starts from the same dense model trained "
        f"{s['epochs']} epoch(s) (seed {s['seed']}) and then spends {s['finetune_epochs']} epochs on its own recipe, "
        f"so all get {s['epochs'] + s['finetune_epochs']} epochs in total. Test accuracy is measured on the "
        "exported .tflite file over the "
        + ("full test split" if s.get("max_test") is None else f"first {s['max_test']} test images")
        + ". Latency: one thread, variants alternated within each of "
        f"{s['reps']} repetitions ({s['runs']} timed runs each) so drift hits all alike.",
        "",
        "Variants: **baseline** float32; **ptq-int8** full-integer post-training quantization of the same model; "
        "**tfmot-N** TF-MOT `prune_low_magnitude` (PolynomialDecay to N% sparsity, frequency/end_step set to the "
        "real step count) + `strip_pruning` + PTQ int8; **tfmot-2:4** `sparsity_m_by_n=(2, 4)` + prune-preserving "
        "QAT; **edgeprune-N** structured channel pruning at ratio N% (channel counts rounded to "
        f"{s['round_to']}) + fine-tune + QAT int8.",
        "",
        f"Environment: {', '.join(f'{k} {v}' for k, v in env.items())}.",
        "",
    ]
    for note in summary.get("notes", []):
        out.append(f"- {note}")
    if summary.get("notes"):
        out.append("")
    if plot_rel:
        out += [f"![accuracy vs latency]({plot_rel})", ""]
    for g in summary["groups"]:
        out += [f"## {g['model']} on {g['dataset']}", ""]
        out += _variant_table(g, host, emulated) + [""]
        out += _target_lines(g) + [""]
    return "\n".join(out)


def write_report(summary_path: Path, markdown_path: Path) -> tuple[Path, Path | None]:
    """(BENCHMARKS.md, plot PNG) regenerated from a summary JSON; the PNG lies next to the JSON."""
    summary_path, markdown_path = Path(summary_path), Path(markdown_path)
    summary = json.loads(summary_path.read_text())
    summary["json_name"] = os.path.relpath(summary_path, markdown_path.parent)
    plot = write_plot(summary, summary_path.with_suffix(".png"))
    plot_rel = os.path.relpath(plot, markdown_path.parent) if plot else None
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(render_markdown(summary, plot_rel))
    return markdown_path, plot
