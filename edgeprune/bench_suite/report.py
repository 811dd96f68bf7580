"""BENCHMARKS.md, generated only from a bench run's summary JSON (``--report-only`` regenerates it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from edgeprune.device_metric import TABLE_UNITS


def _f(x, fmt="{:.2f}"):
    return "—" if x is None else fmt.format(round(x, 6) + 0.0)  # + 0.0: no "-0.00"


def _int(x):
    return "—" if x is None else f"{int(x):,}"


def _cost(cell: dict | None) -> str:
    """The device's one metric: the estimated board time on emulated boards (instructions beside it, and
    alone for an emulated profile without a board model), p50 latency elsewhere."""
    if not cell:
        return "—"
    if cell["emulated"]:
        if cell.get("board_ms") is None:
            return f"{_int(cell.get('instructions'))} instr"
        return f"{_f(cell['board_ms'], '{:.4f}')} ms ({_int(cell.get('instructions'))} instr)"
    return f"{_f(cell.get('p50_ms'), '{:.3f}')} ms"


def _device_head(d: str, emulated: bool) -> list[str]:
    return [f"{d} {'est. board time (instructions)' if emulated else 'p50'}", f"{d} × below PTQ int8"]


def _emulated(group: dict, device: str) -> bool:
    return any((v["devices"].get(device) or {}).get("emulated") for v in group["variants"])


def variant_table(group: dict, devices: list[str]) -> list[str]:
    head = ["variant", "file", "test acc", "loss vs float32 (pt)", "file bytes", "× smaller than float32", "params", "MACs"]
    for d in devices:
        head += _device_head(d, _emulated(group, d))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in group["variants"]:
        r = v["ratios"]
        name = v["variant"] + (f" — ships on {', '.join(v['ships_on'])}" if v.get("ships_on") else "")
        row = [name, f"`{v['artifact'].rsplit('/', 1)[-1]}`", f"{v['test_accuracy'] * 100:.2f}%",
               _f(r["loss_pt"], "{:+.2f}"), _int(v["file_bytes"]), _f(r["size_x_vs_float"], "{:.1f}×"),
               _int(v["params"]), _int(v["macs"])]
        for d in devices:
            row += [_cost(v["devices"].get(d)), _f(r.get(f"{d}_x_vs_ptq"), "{:.2f}×")]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def files_table(run: dict, devices: list[str]) -> list[str]:
    head = ["file", "quant", "test acc", "file bytes", "params"] + [
        f"{d} {'est. board time' if any((f['devices'].get(d) or {}).get('emulated') for f in run['files']) else 'p50'}"
        for d in devices]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in run["files"]:
        lines.append("| " + " | ".join([f"`{f['artifact'].rsplit('/', 1)[-1]}`", str(f["quant"]),
                                         f"{f['test_accuracy'] * 100:.2f}%", _int(f["file_bytes"]), _int(f["params"])]
                                        + [_cost(f["devices"].get(d)) for d in devices]) + " |")
    return lines


def layer_table(lc: dict) -> list[str]:
    """Rows: layers in model order; columns: each profiled file's cost on the device."""
    names = list(lc["profiles"])
    metric = next(iter(lc["profiles"].values()))["metric"]
    layers = list(dict.fromkeys(layer for p in lc["profiles"].values() for layer in p["layers"]))
    head = ["layer"] + [f"{n} ({metric})" for n in names]
    lines = [f"Per-layer cost on {lc['device']} ({metric} per inference, each op isolated with its real shapes "
             "and precision; the per-invoke overhead is its own row):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = _int if metric == "instructions" else (lambda x: _f(x, "{:.5f}"))
    for layer in layers:
        lines.append("| " + " | ".join([layer] + [fmt(lc["profiles"][n]["layers"].get(layer)) for n in names]) + " |")
    lines.append("| per-invoke overhead | " + " | ".join(fmt(lc["profiles"][n]["overhead"]) for n in names) + " |")
    lines.append("| **whole file, measured** | " + " | ".join(f"**{fmt(lc['profiles'][n]['whole'])}**" for n in names)
                 + " |")
    lines.append("| parts ÷ whole | " + " | ".join(_f(lc["profiles"][n]["parts_over_whole"], "{:.3f}") for n in names)
                 + " |")
    return lines


def _allocation(run: dict) -> str:
    """How a device-cost prune step allocated channels (what explains the files' cost and accuracy)."""
    dc = run.get("device_cost")
    if not dc:
        return ""
    kept = ", ".join(f"{k} {v}/{dc['full'].get(k)}" for k, v in dc["counts"].items())
    # one limit ({metric, budget, predicted_cost}) or several ({limits, predicted})
    limits = dc.get("limits") or {dc.get("metric"): dc.get("budget")}
    predicted = dc.get("predicted") or {dc.get("metric"): dc.get("predicted_cost")}
    shown = "; ".join(f"{k} limit {_g(v)}, predicted {_g(predicted.get(k))}" for k, v in limits.items())
    metric = dc.get("metric") or next((k for k in limits if k in TABLE_UNITS), None)  # measured in the device's metric
    unit = TABLE_UNITS.get(metric, "")
    precision = dc["precision"] + (f" ({', '.join(dc['keep_float'])} float)" if dc.get("keep_float") else "")
    chose = "channels and precision chosen" if dc.get("searched_precision") else "channels kept"
    return (f"; {chose} by measured {precision} cost on {dc['device']}: {kept} ({shown}; measured "
            f"{_g(dc.get('measured_cost'))} {unit}, unpruned {_g(dc.get('measured_baseline_cost'))})")


def _g(x) -> str:
    return "—" if x is None else (f"{x:,.0f}" if abs(x) >= 100 else f"{x:g}")


def _measured(t: dict) -> str:
    if t["measured"] is None:
        return "not measured"
    v = round(t["measured"], 6) + 0.0
    return {"pt": f"{v:.2f} pt", "%": f"{v:.2f}%"}.get(t["unit"], f"{v:.2f}{t['unit']}")


def _margin(t: dict) -> str:
    if t["margin"] is None:
        return t.get("note", "—")
    if t["unit"] == "pt":
        return f"{t['margin']:.2f} pt to spare" if t["margin"] >= 0 else f"{-t['margin']:.2f} pt over"
    if t["unit"] == "%":
        return f"{t['margin']:+.2f} pt"
    return f"{t['margin']:.3g}× the target"


def target_table(group: dict) -> list[str]:
    lines = ["| target | judged file | measured | met | margin |", "|---|---|---|---|---|"]
    for t in group["targets"]:
        met = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t.get('judged') or '—'} | {_measured(t)} | {met} | {_margin(t)} |")
    return lines


def _baseline_line(group: dict) -> str:
    b, budget = group["baseline"], group["budget"]
    t = b["train"]
    ref = next(v for v in group["variants"] if v["variant"] == "float32")
    schedule = "cosine decay to zero" if t.get("lr_schedule") == "cosine" else "constant learning rate"
    text = (f"{b['model']} on {b['dataset']['name']}: the shared baseline trains {t['epochs']} epochs (Adam, "
            f"learning rate {t['learning_rate']:g}, {schedule}, batch {t['batch_size']}, seed {b['seed']}); "
            f"its Keras test accuracy is {b['test_accuracy_keras'] * 100:.2f}%")
    curve = b.get("val_accuracy_by_epoch")
    if curve:
        last = ", ".join(f"{a * 100:.2f}" for a in curve[-4:])
        text += f" (validation accuracy over its last {min(4, len(curve))} epochs: {last}%)"
    text += ". "
    if budget["same_budget"]:
        text += (f"Every variant then spends {budget['after_epochs']} more epochs on its own steps "
                 f"({budget['total_epochs']} in total); the float32 reference is the dense model after them.")
    else:
        text += ("The reference files are this baseline as trained; the edgeprune recipe trains further "
                 "(the comparison the target asks for).")
    return text + f" Test accuracy of each file: {_int(ref.get('test_samples'))} test images."


def render_markdown(summary: dict) -> str:
    devices = summary["devices"]
    env = summary.get("environment", {})
    out = [
        "# Benchmarks: edgeprune vs PTQ int8 and TF-MOT, on the emulated Cortex-A72 and A76",
        "",
        f"Generated by `{summary['command']}` on {summary['date']} — do not edit by hand. Raw numbers: "
        f"`{summary['json_name']}`. This invocation took {summary['seconds'] / 60:.1f} min; the recipe runs it "
        f"reports took {summary.get('recipe_run_seconds', 0) / 60:.0f} min when they ran (a finished run is reused; "
        "training the baselines is cached by the train step and not counted).",
        "",
        "Every number comes from edgeprune's own recipes (`recipes/bench/`, listed in "
        f"`{Path(summary['suite']).name}`) run by `edgeprune run`'s steps: the train step (its trained model "
        "cached by content hash and shared by every recipe of a model), prune, fine-tune, quantize, export and "
        "benchmark. **float32** and **PTQ int8** are the dense reference recipe's files; **tfmot-N** is TF-MOT's "
        "`prune_low_magnitude` (PolynomialDecay to N% sparsity, `strip_pruning`) on the same baseline for the same "
        "epochs, then the product's PTQ, export and benchmark steps; the **edgeprune** rows are the files each "
        "edgeprune recipe's report says to ship on each device (its \"which file to ship\").",
        "",
        "Cost on an emulated board is its estimated board time: the instruction mix and simulated caches of one "
        "inference under QEMU user mode (one thread, deterministic) through the board's pipe model, checked "
        "against published Raspberry Pi times (bench/BOARD_CHECK.md); instructions per inference stand beside "
        "it. On the host it is p50 latency. Test accuracy is that of the exported file.",
        "",
        f"Environment: {', '.join(f'{k} {v}' for k, v in env.items())}.",
        "",
    ]
    out += [f"- {n}" for n in summary.get("notes", [])] + ([""] if summary.get("notes") else [])
    missed = []
    for g in summary["groups"]:
        out += [f"## {g['name']}", "", _baseline_line(g), ""]
        out += variant_table(g, devices) + [""]
        out += ["Targets:", ""] + target_table(g) + [""]
        for lc in g.get("layer_costs", []):
            out += layer_table(lc) + [""]
        for run in g.get("edgeprune_runs", []):
            what = f" — {run['description']}" if run.get("description") else ""
            out += [f"All files of `{run['recipe']}` ({Path(run['recipe_path']).name}{what}){_allocation(run)}:", ""]
            out += files_table(run, devices) + [""]
        missed += [f"{g['name']}: {t['target']} ({t.get('judged') or 'no file'}: {_measured(t)})"
                   for t in g["targets"] if t["met"] is False]
    out += ["## Targets missed", ""]
    out += [f"- {m}" for m in missed] if missed else ["None: every target above is met."]
    return "\n".join(out) + "\n"


def write_report(summary_path: Path, markdown_path: Path) -> Path:
    summary_path, markdown_path = Path(summary_path), Path(markdown_path)
    summary = json.loads(summary_path.read_text())
    summary["json_name"] = os.path.relpath(summary_path, markdown_path.parent)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(render_markdown(summary))
    return markdown_path
