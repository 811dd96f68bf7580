""""Where the time goes": the per-layer device cost that the prune step wrote (profile.json), before and after."""
from __future__ import annotations

import json
from pathlib import Path

PROFILE_FILE = "profile.json"


def _layers(profile: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in profile.get("ops", []):
        row = out.setdefault(r["layer"], {"ops": [], "cost": 0.0})
        row["ops"].append(r["op"])
        row["cost"] += float(r["cost"])
    return out


def device_cost_section(run_dir: Path, notes: list[str]) -> dict | None:
    """The report's ``device_cost`` dict from the run's profile.json, or None when the run wrote none."""
    path = Path(run_dir) / PROFILE_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
        before, after, alloc = d["before"], d["after"], d.get("allocation") or {}
        lb, la = _layers(before), _layers(after)
        layers = [{"layer": name, "ops": row["ops"], "before": row["cost"], "after": la.get(name, {}).get("cost")}
                  for name, row in lb.items()]
        layers += [{"layer": name, "ops": row["ops"], "before": None, "after": row["cost"]}
                   for name, row in la.items() if name not in lb]
        return {"device": d["device"], "cpu": before.get("cpu", ""), "precision": d["precision"],
                "metric": before["metric"], "budget": alloc.get("budget"),
                "predicted": (alloc.get("predicted") or {}).get(before["metric"], alloc.get("predicted_cost")),
                "before_whole": before["whole"], "after_whole": after["whole"],
                "before_overhead": before["overhead"], "after_overhead": after["overhead"],
                "before_parts_over_whole": before["parts_over_whole"], "after_parts_over_whole": after["parts_over_whole"],
                "counts": alloc.get("counts", {}), "full": alloc.get("full", {}), "layers": layers}
    except (KeyError, TypeError, ValueError) as e:
        notes.append(f"{PROFILE_FILE} has an unexpected layout ({e}): the per-layer device cost is left out")
        return None


def fmt_cost(metric: str, v) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if metric == "instructions" else f"{v:.4f}"


def section(report: dict):
    from edgeprune.report.sections import Section, Table

    dc = report.get("device_cost")
    if not dc:
        return None
    m = dc["metric"]
    unit = "instructions" if m == "instructions" else "p50 ms"
    rows = []
    for l in dc["layers"]:
        share = f"{l['before'] / dc['before_whole']:.1%}" if l["before"] is not None and dc["before_whole"] else "—"
        rows.append([l["layer"], " ".join(l["ops"]), fmt_cost(m, l["before"]), share, fmt_cost(m, l["after"])])
    rows.append(["(per-invoke overhead)", "", fmt_cost(m, dc["before_overhead"]), "", fmt_cost(m, dc["after_overhead"])])
    rows.append(["whole model, measured", "", fmt_cost(m, dc["before_whole"]), "100%", fmt_cost(m, dc["after_whole"])])
    text = (f"Cost of every layer on {dc['device']} ({dc['cpu']}), {dc['precision']}: each op isolated with its real "
            f"shapes and quantization and measured alone, minus the per-invoke overhead of an empty model. "
            f"Parts + overhead over the whole model: {dc['before_parts_over_whole']:.3f} before, "
            f"{dc['after_parts_over_whole']:.3f} after.")
    bullets = []
    if dc.get("budget") is not None:
        met = "met" if dc["after_whole"] <= dc["budget"] else "NOT met"
        bullets.append(f"budget {fmt_cost(m, dc['budget'])} {unit}: predicted {fmt_cost(m, dc['predicted'])}, "
                       f"measured {fmt_cost(m, dc['after_whole'])} ({met}); "
                       f"{dc['before_whole'] / max(dc['after_whole'], 1e-12):.2f}× below the unpruned model")
    if dc.get("counts"):
        bullets.append("channels kept per group: " + ", ".join(f"{k} {v}/{dc['full'].get(k, '?')}"
                                                                for k, v in dc["counts"].items()))
    return Section("device_cost", "Where the time goes", text,
                   [Table(["layer", "ops", f"{unit} before", "share", f"{unit} after"], rows, {2, 3, 4})], bullets)


def figure(dc: dict):
    """Bars per layer, before and after (log scale: the first conv can dwarf the rest)."""
    from edgeprune.report.plots import _bars

    unit = "instructions" if dc["metric"] == "instructions" else "p50 latency (ms)"
    layers = [{"name": l["layer"], "cost_before": l["before"], "cost_after": l["after"]} for l in dc["layers"]
              if l["before"] is not None]
    return _bars(layers, "cost", f"{unit} (log)", f"where the time goes on {dc['device']} ({dc['precision']})", log=True)
