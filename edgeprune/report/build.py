"""metrics.json + the run directory → the report dict (report.json, schema in :mod:`.schema`).

Everything here is read from files the run wrote; nothing is re-measured.  What cannot be shown
(no plan, a model file missing, ...) is said in ``notes`` rather than silently left out.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import yaml

from edgeprune.errors import EdgepruneError
from edgeprune.device_metric import cost, row_metric, ship_choice
from edgeprune.report.device_cost import device_cost_section
from edgeprune.report.pareto import pareto_front
from edgeprune.report.schema import REPORT_SCHEMA_VERSION, validate_report
from edgeprune.rundir import WEIGHTS_FILE, WeightsFile, read_metrics, read_model

# stages in pipeline order; the stage before "pruned" is what pruning started from
STAGE_ORDER = ("baseline", "sparse", "pruned", "finetuned", "qat")
# "recommended" = cheapest row (device metric) whose test accuracy is within this fraction of the device's best
RECOMMEND_WITHIN = 0.01


def load_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise EdgepruneError(f"no metrics.json in {run_dir}", "run `edgeprune run RECIPE --out DIR` first, then report on DIR")
    try:
        return read_metrics(path)
    except ValueError as e:  # not JSON, or not metrics.json version 1
        raise EdgepruneError(f"{path} is not a metrics.json this edgeprune reads ({str(e).splitlines()[0]})",
                             "re-run `edgeprune run` to rewrite it") from None


def build_report(run_dir, *, weights: bool = True) -> dict:
    """The report dict for one run directory, validated against the schema.

    ``weights=False`` leaves out the weight histograms: enough for tables and comparisons.
    """
    run_dir = Path(run_dir)
    m = load_metrics(run_dir)
    notes: list[str] = []
    lock = _read_lock(run_dir, notes)
    run = m.get("run", {})
    stages = m.get("stages", {})
    rows = summary_rows(m)
    _mark_pareto(rows)
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "run": {"name": run.get("name", run_dir.name), "run_dir": str(run_dir), "recipe_path": run.get("recipe_path"),
                "started": run.get("started"), "seconds": run.get("seconds")},
        "recipe": lock.get("recipe"),
        "seed": m.get("seed", lock.get("seed")),
        "environment": m.get("environment", {}),
        "dataset": m.get("dataset", {}),
        "rows": rows,
        "recommendations": recommendations(rows, m.get("precision")),
        "stages": [{"stage": s, **{k: v for k, v in d.items() if k != "layers"}} for s, d in _ordered(stages)],
        "pruning": pruning_section(run_dir, m, notes),
        "weights": None,
        "sensitivity": _sensitivity(run_dir, m, notes),
        "device_cost": device_cost_section(run_dir, notes),
        "training": [{"step": s["name"], "history": s["history"]} for s in m.get("steps", []) if s.get("history")],
        "skipped_devices": [{"device": d.get("device", "?"), "reason": d.get("reason", "")} for d in m.get("skipped_devices", [])],
        "mobile": None,
        "notes": notes,
    }
    report["mobile"] = mobile_files(m, rows, report["recommendations"])
    if weights:
        report["weights"] = weights_section(run_dir, m, notes)
    if not m.get("benchmarks"):
        notes.append("no benchmark step ran: latency and memory columns are empty")
    unranked = sorted({r["device"] for r in rows if r["device"] and cost(r) is None})
    if unranked:
        notes.append(f"some files on {', '.join(unranked)} lack their device's metric "
                     "(estimated board time on emulated boards, p50 latency elsewhere): they are not ranked or starred")
    validate_report(report)
    return report


def _ordered(stages: dict):
    known = [(s, stages[s]) for s in STAGE_ORDER if s in stages]
    return known + [(s, d) for s, d in stages.items() if s not in STAGE_ORDER]


def _read_lock(run_dir: Path, notes: list[str]) -> dict:
    path = run_dir / "recipe.lock.yaml"
    if not path.exists():
        notes.append("recipe.lock.yaml is missing: the resolved recipe is not in this report")
        return {}
    return yaml.safe_load(path.read_text()) or {}


# ---------------------------------------------------------------------------------------------
# summary rows: one per stage × format × device


def summary_rows(m: dict) -> list[dict]:
    stages = m.get("stages", {})
    test_n = m.get("dataset", {}).get("test")
    exports = {e["path"]: e for e in m.get("exports", [])}
    rows = []
    benched = set()
    for b in m.get("benchmarks", []):
        exp = exports.get(b["export"], {})
        benched.add(b["export"])
        rows.append(_artifact_row(exp or b, stages.get(b["stage"], {}), test_n, bench=b))
    for path, exp in exports.items():
        if path not in benched:
            rows.append(_artifact_row(exp, stages.get(exp["stage"], {}), test_n, bench=None))
    if not rows:  # nothing exported: the Keras stages are the artifacts
        for stage, d in _ordered(stages):
            rows.append({"stage": stage, "format": "keras", "quant": None, "device": None, "emulated": False,
                         "artifact": d.get("model_path"), "file_bytes": d.get("file_bytes"), "params": d.get("params"),
                         "macs": d.get("macs"), "test_accuracy": d.get("test_accuracy"), "test_samples": test_n})
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    rows.sort(key=lambda r: (r["device"] is None, r["device"] or "", order.get(r["stage"], 99), r["format"], r["quant"] or ""))
    return rows


def _artifact_row(exp: dict, stage: dict, test_n, bench: dict | None) -> dict:
    row = {
        "stage": exp["stage"], "format": exp["format"], "quant": exp.get("quant"),
        "device": None, "emulated": False, "artifact": exp.get("path") or exp.get("export"),
        "file_bytes": exp.get("file_bytes"), "params": stage.get("params"), "macs": stage.get("macs"),
        "test_accuracy": exp.get("accuracy"), "test_samples": exp.get("samples", test_n),
    }
    if "top1_agreement" in exp:
        row["parity"] = {k: exp.get(k) for k in ("top1_agreement", "max_abs_diff", "tolerance", "within_tolerance", "samples")}
    if bench is not None:
        lat = bench.get("latency_ms") or {}
        row.update({
            "device": bench["device"], "emulated": bool(bench.get("emulated")), "cpu": bench.get("cpu"),
            "device_accuracy": bench.get("accuracy"), "device_eval_samples": bench.get("eval_samples"),
            "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean")},
            "init_ms": bench.get("init_ms"), "first_inference_ms": bench.get("first_inference_ms"),
            "peak_rss_bytes": bench.get("peak_rss_bytes"),
            "instructions_per_inference": bench.get("instructions_per_inference"), "raw": bench.get("raw"),
            "board_time_ms": bench.get("board_time_ms"), "board": (bench.get("board_time") or {}).get("board"),
            "arch": bench.get("arch"), "stands_for": bench.get("stands_for"),
        })
        if row["test_accuracy"] is None:
            row["test_accuracy"] = bench.get("accuracy")
    return row


def _mark_pareto(rows: list[dict]) -> None:
    """Star each device's accuracy-vs-cost front (cost: the device metric) and accuracy-vs-size front."""
    for device in {r["device"] for r in rows if r["device"]}:
        idx = [i for i, r in enumerate(rows) if r["device"] == device and r["test_accuracy"] is not None]
        for i, on_front in pareto_marks(rows, idx).items():
            rows[i]["pareto_latency"] = on_front
        sized = [i for i in idx if rows[i]["file_bytes"] is not None]
        front = {sized[k] for k in pareto_front([(rows[i]["file_bytes"], rows[i]["test_accuracy"]) for i in sized])}
        for i in sized:
            rows[i]["pareto_size"] = i in front


def pareto_marks(rows: list[dict], idx: list[int]) -> dict[int, bool]:
    """{row index: on the front} for rows `idx` of one device, cost = that device's metric (rows without it left out)."""
    ranked = [i for i in idx if cost(rows[i]) is not None and rows[i].get("test_accuracy") is not None]
    front = {ranked[k] for k in pareto_front([(cost(rows[i]), rows[i]["test_accuracy"]) for i in ranked])}
    return {i: i in front for i in ranked}


def recommendations(rows: list[dict], precision: dict | None = None) -> list[dict]:
    """Per device: the recommended row, the most accurate, the cheapest and the smallest.

    Cost is the device metric (:mod:`edgeprune.device_metric`): the estimated board time on
    emulated boards, p50 latency elsewhere. "recommended" is :func:`ship_choice` over the device's
    files within 1 point of the best; after ``precision: auto`` it is the choice among the
    precisions of the shipped stage within the recipe's accuracy budget (the file the run kept).
    """
    out = []
    for device in sorted({r["device"] for r in rows if r["device"]}):
        idx = [i for i, r in enumerate(rows) if r["device"] == device and r["test_accuracy"] is not None
               and cost(r) is not None]
        if not idx:
            continue
        metric = row_metric(rows[idx[0]])
        speed = lambda i: cost(rows[i])  # noqa: E731
        acc = lambda i: rows[i]["test_accuracy"]  # noqa: E731
        best = max(idx, key=lambda i: (acc(i), -speed(i)))
        fastest = min(idx, key=lambda i: (speed(i), -acc(i)))
        pool, within, why = idx, RECOMMEND_WITHIN, f"within {RECOMMEND_WITHIN * 100:g} percentage point of the best test accuracy"
        if precision and precision.get("mode") == "auto":
            auto = [i for i in idx if rows[i]["stage"] in precision["stages"]]
            if auto:
                pool, within = auto, precision["max_accuracy_drop"] / 100
                why = (f"within {precision['max_accuracy_drop']:g} points of the most accurate precision of the "
                       f"{'/'.join(precision['stages'])} model (precision: auto)")
        pick = pool[ship_choice([rows[i] for i in pool], within)]
        out.append({"device": device, "goal": "recommended", "row": pick, "why": f"lowest {metric.label} {why}",
                    "stands_for": rows[pick].get("stands_for") or device})
        out.append({"device": device, "goal": "most_accurate", "row": best, "why": "highest test accuracy"})
        out.append({"device": device, "goal": "fastest", "row": fastest, "why": f"lowest {metric.label}"})
        sized = [i for i in idx if rows[i]["file_bytes"] is not None]
        if sized:
            out.append({"device": device, "goal": "smallest", "row": min(sized, key=lambda i: (rows[i]["file_bytes"], -acc(i))),
                        "why": "smallest file"})
    return out


MOBILE_RUNTIMES = {"ort": "ONNX Runtime Mobile (Android, iOS)", "tflite": "LiteRT / TensorFlow Lite (Android, iOS)"}
ARM_ARCHES = ("aarch64", "armv7")


def mobile_files(m: dict, rows: list[dict] | None = None, recs: list[dict] | None = None) -> list[dict]:
    """Per mobile runtime, the export an app loads.

    Phones run Arm cores: when an Arm board (emulated or real) was benchmarked, the app loads the
    file recommended there (the same answer as "Which file to ship"); otherwise the smallest file
    within RECOMMEND_WITHIN of the best test accuracy of that format."""
    out = []
    exports = {e["path"]: e for e in m.get("exports", []) if e.get("file_bytes") is not None}
    for fmt, runtime in MOBILE_RUNTIMES.items():
        exps = [e for e in exports.values() if e.get("format") == fmt]
        if not exps:
            continue
        on_arm = [(r["device"], rows[r["row"]]) for r in recs or [] if r["goal"] == "recommended"
                  and rows[r["row"]]["format"] == fmt and rows[r["row"]]["artifact"] in exports
                  and rows[r["row"]].get("arch") in ARM_ARCHES]
        if on_arm:
            device, row = on_arm[0]
            pick = exports[row["artifact"]]
            why = f"the file recommended for {device} ({row.get('stands_for') or device}), an Arm core as in phones"
        else:
            best = max((e.get("accuracy") or 0.0) for e in exps)
            pick = min((e for e in exps if (e.get("accuracy") or 0.0) >= best - RECOMMEND_WITHIN),
                       key=lambda e: e["file_bytes"])
            why = (f"smallest .{fmt} export within {RECOMMEND_WITHIN * 100:g} percentage point of the best "
                   f".{fmt} test accuracy (no Arm board was benchmarked)")
        out.append({"runtime": runtime, "format": fmt, "stage": pick["stage"], "quant": pick.get("quant"),
                    "file": pick["path"], "beside": list(pick.get("sidecars", [])), "file_bytes": pick["file_bytes"],
                    "test_accuracy": pick.get("accuracy"), "why": why})
    return out


# ---------------------------------------------------------------------------------------------
# pruning: per-layer changes and the plan's removed channels


def before_stage(stages: dict) -> str:
    return "sparse" if "sparse" in stages else "baseline"


def pruning_section(run_dir: Path, m: dict, notes: list[str]) -> dict | None:
    stages = m.get("stages", {})
    if "pruned" not in stages:
        return None
    b_name = before_stage(stages)
    before, after = stages.get(b_name, {}), stages["pruned"]
    info = m.get("pruning", {})
    section = {
        "before_stage": b_name, "after_stage": "pruned", "plan_path": info.get("plan_path"),
        "ratio": info.get("ratio"), "criterion": info.get("criterion"), "schedule": info.get("schedule"),
        "removed_channels": info.get("removed_channels"),
        "params_before": before.get("params"), "params_after": after.get("params"),
        "macs_before": before.get("macs"), "macs_after": after.get("macs"),
        "layers": layer_changes(before.get("layers", []), after.get("layers", [])),
        "groups": [], "steps": info.get("steps", []),
    }
    plan_path = run_dir / (info.get("plan_path") or "plan.json")
    if plan_path.exists():
        plan = json.loads(plan_path.read_text())
        section["settings"] = plan.get("settings", {})
        section["groups"] = [{
            "id": g["id"], "sources": g["sources"], "channels": g["channels"], "kept": g["kept"],
            "removed_channels": g.get("removed_channels", []), "removed_scores": g.get("removed_scores", []),
            "kept_score_mean": g.get("kept_score_mean"), "pinned_reasons": g.get("pinned_reasons", []),
        } for g in plan.get("groups", [])]
        if section["removed_channels"] is None:
            section["removed_channels"] = sum(g["channels"] - g["kept"] for g in section["groups"])
    else:
        notes.append(f"{plan_path.name} is missing: the removed-channel table is empty")
    return section


def layer_changes(before: list[dict], after: list[dict]) -> list[dict]:
    """Layers with parameters or MACs, before vs after pruning (channels = last output dim)."""
    after_by_name = {layer["name"]: layer for layer in after}
    rows = []
    for lb in before:
        if not lb.get("params") and not lb.get("macs"):
            continue
        la = after_by_name.get(lb["name"])
        rows.append({
            "name": lb["name"], "type": lb["type"],
            "channels_before": _channels(lb), "channels_after": _channels(la) if la else None,
            "params_before": lb["params"], "params_after": la["params"] if la else None,
            "macs_before": lb["macs"], "macs_after": la["macs"] if la else None,
        })
    return rows


def _channels(layer: dict) -> int | None:
    shape = layer.get("output_shape") or []
    return int(shape[-1]) if shape and shape[-1] is not None else None


def weights_section(run_dir: Path, m: dict, notes: list[str]) -> dict | None:
    """The histograms the prune (or search) step wrote, while the model files they describe are there."""
    if "pruned" not in m.get("stages", {}):
        return None
    why: list[str] = []
    hist = read_model(run_dir, WEIGHTS_FILE, WeightsFile, why)
    if hist is None:
        notes.append(f"weight histograms left out: {why[0]}")
        return None
    missing = [p for p in (hist.before_model, hist.after_model) if not (run_dir / p).exists()]
    if missing:
        notes.append(f"weight histograms left out: {', '.join(missing)} missing")
        return None
    notes.extend(hist.notes)
    return hist.model_dump(include={"before_stage", "after_stage", "layers"})


def _sensitivity(run_dir: Path, m: dict, notes: list[str]) -> dict | None:
    rel = (m.get("pruning") or {}).get("sensitivity_path") or "sensitivity.json"
    path = run_dir / rel
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    try:
        return {"ratios": list(d["ratios"]), "baseline_val_accuracy": float(d["baseline_val_accuracy"]),
                "curves": {k: list(v) for k, v in d["curves"].items()}}
    except (KeyError, TypeError, ValueError) as e:
        notes.append(f"{rel} has an unexpected layout ({e}): sensitivity curves left out")
        return None
