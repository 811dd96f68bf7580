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
