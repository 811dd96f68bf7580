"""The report's sections as data (key, title, text, tables), rendered by markdown.py and html.py alike."""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeprune.device_metric import BOARD_TIME, INSTRUCTIONS, RULE, TABLE_UNITS, cost, row_metric
from edgeprune.report.device_cost import fmt_cost as fmt_layer_cost
from edgeprune.report.table import DASH, cells, columns, fmt_acc, fmt_device, fmt_format, fmt_int, fmt_ms

LEGEND = (f"★ = on the accuracy-vs-cost Pareto front of its device ({RULE}). test acc: the exported file on the run's "
          "test split. parity: top-1 agreement with the Keras model and the largest |output difference| "
          "(ok/FAIL against the float tolerance; quantized files are not judged).")
MAX_SCORES_SHOWN = 8


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)   # right-aligned (numeric) columns


@dataclass
class Section:
    key: str            # html.py hangs the plots on this
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)


def _numeric(header: list[str], text_cols: tuple[str, ...]) -> set[int]:
    return {i for i, c in enumerate(header) if c not in text_cols}


def summary(report: dict) -> Table:
    cols = columns(report["rows"])
    return Table(cols, [cells(r, cols) for r in report["rows"]], _numeric(cols, ("stage", "format", "device", "parity")))


def headline(report: dict) -> str:
    run, ds = report["run"], report.get("dataset", {})
    recipe = report.get("recipe") or {}
    inputs = f", inputs {ds['inputs']}" if ds.get("inputs") else ""  # runs before the scaling option lack it
    return (f"Model {recipe.get('model', '?')} on {ds.get('name', '?')} ({fmt_int(ds.get('train'))} train / "
            f"{fmt_int(ds.get('val'))} val / {fmt_int(ds.get('test'))} test{inputs}), seed {report.get('seed')}, "
            f"started {run.get('started') or '?'}, {run.get('seconds') or 0:.0f} s.")


def sections(report: dict) -> list[Section]:
    out = []
    for make in (recommendations, mobile, stages, pruning, removed_groups, device_cost, weights, sensitivity, training,
                 skipped, notes, environment):
        s = make(report)
        if s is not None:
            out.append(s)
    return out


def answers(report: dict) -> list[dict]:
    """The one answer per device: the recommended file, what the device stands for, its cost, size and accuracy."""
    rows = report["rows"]
    out = []
    for r in report.get("recommendations") or []:
        if r["goal"] != "recommended":
            continue
        row = rows[r["row"]]
        out.append({"device": r["device"], "stands_for": r.get("stands_for") or r["device"],
                    "artifact": row["artifact"], "cost": fmt_cost(row), "file_bytes": row["file_bytes"],
                    "test_accuracy": row["test_accuracy"], "why": r["why"]})
    return out


def answer_lines(report: dict, report_path: str | None = None) -> list[str]:
    """The last lines of `edgeprune run`: per device the file to ship, in at most 80 columns."""
    found = answers(report)
    if not found:
        return []
    lines = ["Which file to ship:"]
    for a in found:
        lines.append(f"  {a['device']} = {a['stands_for']}:")
        lines.append(f"    {a['artifact']}  {a['cost']}, {fmt_int(a['file_bytes'])} B, test acc {fmt_acc(a['test_accuracy'])}")
    if report_path:
        lines.append(f"Report: {report_path}")
    return lines


def recommendations(report: dict) -> Section | None:
    recs = report.get("recommendations") or []
    if not recs:
        return None
    rows = report["rows"]
    ship = [[a["device"], a["stands_for"], a["artifact"], fmt_acc(a["test_accuracy"]), a["cost"],
             fmt_int(a["file_bytes"]), a["why"]] for a in answers(report)]
    others = []
    for r in recs:
        if r["goal"] == "recommended":
            continue
        row = rows[r["row"]]
        others.append([fmt_device(row), r["goal"].replace("_", " "), f"{row['stage']} {fmt_format(row)}",
                       fmt_acc(row["test_accuracy"]), fmt_cost(row), fmt_int(row["file_bytes"]), r["why"]])
    tables = [Table(["device", "stands for", "ship this file", "test acc", "cost", "file bytes", "why"], ship, {3, 4, 5})]
    if others:
        tables.append(Table(["device", "if you want", "artifact", "test acc", "cost", "file bytes", "why"], others,
                            {3, 4, 5}))
    return Section("recommendations", "Which file to ship",
                   f"One file per device, ranked by the device's one metric ({RULE}); then the alternatives "
                   "for other goals.", tables=tables)


def fmt_cost(row: dict) -> str:
    """The row's device metric with its unit: ``0.0421 ms``, ``0.0421 ms est.`` (emulated board) or ``1,234,567 instr``."""
    value = cost(row)
    if value is None:
        return DASH
    metric = row_metric(row)
    if metric is INSTRUCTIONS:
        return f"{fmt_int(value)} instr"
    return f"{fmt_ms(value)} ms" + (" est." if metric is BOARD_TIME else "")


def mobile(report: dict) -> Section | None:
    files = report.get("mobile") or []
    if not files:
        return None
    body = [[f["runtime"], f["file"], ", ".join(f.get("beside") or []) or DASH, fmt_acc(f.get("test_accuracy")),
             fmt_int(f.get("file_bytes")), f["why"]] for f in files]
    return Section("mobile", "Files for mobile apps",
                   text="The file an Android or iOS app loads, and what goes beside it in the app's assets "
                        "(.ort: the operators of a reduced ONNX Runtime build; .tflite: metadata JSON and labels).",
                   tables=[Table(["runtime", "app loads", "beside it", "test acc", "file bytes", "why"], body, {3, 4})])


def stages(report: dict) -> Section | None:
    st = report.get("stages") or []
    if not st:
        return None
    body = [[s["stage"], fmt_int(s.get("params")), fmt_int(s.get("macs")), fmt_int(s.get("file_bytes")),
             fmt_acc(s.get("val_accuracy")), fmt_acc(s.get("test_accuracy")), s.get("model_path") or DASH] for s in st]
    return Section("stages", "Keras stages", tables=[
        Table(["stage", "params", "MACs", "file bytes", "val acc", "test acc", "file"], body, {1, 2, 3, 4, 5})])


def _drop(before, after) -> str:
    if not before or after is None:
        return DASH
    return f"−{(1 - after / before) * 100:.1f}%"


def pruning(report: dict) -> Section | None:
    p = report.get("pruning")
    if not p:
        return None
    settings = p.get("settings") or {}
    if settings.get("allocation") == "device_cost":  # no ratio: the measured cost chose each group's count
        precision = settings.get("precision", "?")
        if settings.get("keep_float") and precision == "mixed":
            precision += f" with {', '.join(settings['keep_float'])} float"
        chose = ("Channels per group and each layer's precision chosen together" if settings.get("searched_precision")
                 else "Channels per group chosen")
        how = f"{chose} by measured cost on {settings.get('device', '?')} "
        how += (f"({precision}, budget {settings.get('budget', '?')}), criterion "
                f"{p.get('criterion') or '?'} for which channels go")
    else:
        how = f"Criterion {p.get('criterion') or '?'}, ratio {p.get('ratio')}, schedule {p.get('schedule') or 'oneshot'}"
    text = (f"{how}; "
            f"{fmt_int(p.get('removed_channels'))} channels removed. Params {fmt_int(p.get('params_before'))} → "
            f"{fmt_int(p.get('params_after'))} ({_drop(p.get('params_before'), p.get('params_after'))}), MACs "
            f"{fmt_int(p.get('macs_before'))} → {fmt_int(p.get('macs_after'))} ({_drop(p.get('macs_before'), p.get('macs_after'))}).")
    body = [[l["name"], l["type"], fmt_int(l["channels_before"]), fmt_int(l["channels_after"]),
             fmt_int(l["params_before"]), fmt_int(l["params_after"]), fmt_int(l["macs_before"]), fmt_int(l["macs_after"])]
            for l in p.get("layers", [])]
    tables = [Table(["layer", "type", "channels before", "channels after", "params before", "params after",
                     "MACs before", "MACs after"], body, {2, 3, 4, 5, 6, 7})]
    if p.get("steps"):
        tables.append(Table(["schedule step", "ratio", "val acc"],
                            [[str(i + 1), str(s.get("ratio", DASH)), fmt_acc(s.get("val_accuracy"))] for i, s in enumerate(p["steps"])],
                            {0, 1, 2}))
    return Section("pruning", f"Pruning ({p['before_stage']} → {p['after_stage']})", text, tables)


def removed_groups(report: dict) -> Section | None:
    p = report.get("pruning")
    if not p or not p.get("groups"):
        return None
    body = []
    for g in p["groups"]:
        removed, scores = g["removed_channels"], g["removed_scores"]
        shown = ", ".join(f"{c}:{s:.3g}" for c, s in zip(removed[:MAX_SCORES_SHOWN], scores[:MAX_SCORES_SHOWN]))
        if len(removed) > MAX_SCORES_SHOWN:
            shown += f", … (+{len(removed) - MAX_SCORES_SHOWN} more in report.json)"
        score_range = f"{min(scores):.4g}–{max(scores):.4g}" if scores else DASH
        kept_mean = DASH if g.get("kept_score_mean") is None else f"{g['kept_score_mean']:.4g}"
        body.append([str(g["id"]), ", ".join(g["sources"]), str(g["channels"]), str(g["kept"]), score_range, kept_mean,
                     shown or DASH])
    return Section("removed", "Removed channels per group",
                   "Channel index:importance score of the removed channels, lowest score first (scores from plan.json; "
                   "higher = more important).",
                   [Table(["group", "source layers", "channels", "kept", "removed scores", "kept mean score",
                           "removed (index:score)"], body, {0, 2, 3, 4, 5})])


def weights(report: dict) -> Section | None:
    w = report.get("weights")
    if not w:
        return None
    body = [[h["layer"], h["type"], fmt_int(h["count_before"]), fmt_int(h["count_after"]),
             fmt_int(h["count_before"] - h["count_after"]), f"{h['mean_abs_before']:.4g}",
             DASH if h["mean_abs_after"] is None else f"{h['mean_abs_after']:.4g}"] for h in w["layers"]]
    return Section("weights", f"Kernel weights ({w['before_stage']} → {w['after_stage']})",
                   "Per-layer |w| histograms (kept, removed, after) are plotted in report.html and stored in report.json.",
                   [Table(["layer", "type", "weights before", "weights after", "removed", "mean |w| before",
                           "mean |w| after"], body, {2, 3, 4, 5, 6})])


def sensitivity(report: dict) -> Section | None:
    s = report.get("sensitivity")
    if not s:
        return None
    header = ["group"] + [f"ratio {r:g}" for r in s["ratios"]]
    return Section("sensitivity", "Sensitivity",
                   f"Val accuracy when one group is pruned alone (unpruned: {s['baseline_val_accuracy']:.4f}).",
                   [Table(header, [[g] + [fmt_acc(v) for v in curve] for g, curve in s["curves"].items()],
                          set(range(1, len(header))))])


def training(report: dict) -> Section | None:
    curves = report.get("training") or []
    if not curves:
        return None
    body = []
    for c in curves:
        h = c["history"]
        body.append([c["step"], str(max((len(v) for v in h.values()), default=0)),
                     fmt_acc((h.get("accuracy") or [None])[-1]), fmt_acc((h.get("val_accuracy") or [None])[-1])])
    return Section("training", "Training", tables=[Table(["step", "epochs", "final train acc", "final val acc"], body, {1, 2, 3})])


def skipped(report: dict) -> Section | None:
    sk = report.get("skipped_devices") or []
    if not sk:
        return None
    return Section("skipped", "Devices not measured", bullets=[f"{s['device']}: {s['reason']}" for s in sk])


def notes(report: dict) -> Section | None:
    n = report.get("notes") or []
    return Section("notes", "Notes", bullets=list(n)) if n else None


def environment(report: dict) -> Section:
    env = report.get("environment") or {}
    ds = report.get("dataset") or {}
    rows = [[k, str(v)] for k, v in env.items()]
    rows += [["dataset source", str(ds.get("source", DASH))], ["dataset fingerprint", str(ds.get("fingerprint", DASH))],
             ["input scaling", str(ds.get("inputs", DASH))],
             ["seed", str(report.get("seed"))], ["recipe", str(report["run"].get("recipe_path") or DASH)]]
    return Section("environment", "Environment and reproducibility",
                   "The resolved recipe is in recipe.lock.yaml and in report.json (\"recipe\").",
                   [Table(["", "value"], rows)])


def device_cost(report: dict) -> Section | None:
    """"Where the time goes": per-layer cost on the device the prune step allocated for, before and after."""
    dc = report.get("device_cost")
    if not dc:
        return None
    m = dc["metric"]
    unit = TABLE_UNITS.get(m, m)
    rows = []
    for l in dc["layers"]:
        share = f"{l['before'] / dc['before_whole']:.1%}" if l["before"] is not None and dc["before_whole"] else "—"
        rows.append([l["layer"], " ".join(l["ops"]), fmt_layer_cost(m, l["before"]), share, fmt_layer_cost(m, l["after"])])
    rows.append(["(per-invoke overhead)", "", fmt_layer_cost(m, dc["before_overhead"]), "", fmt_layer_cost(m, dc["after_overhead"])])
    rows.append(["whole model, measured", "", fmt_layer_cost(m, dc["before_whole"]), "100%", fmt_layer_cost(m, dc["after_whole"])])
    text = (f"Cost of every layer on {dc['device']} ({dc['cpu']}), {dc['precision']}: each op isolated with its real "
            f"shapes and quantization and measured alone, minus the per-invoke overhead of an empty model. "
            f"Parts + overhead over the whole model: {dc['before_parts_over_whole']:.3f} before, "
            f"{dc['after_parts_over_whole']:.3f} after.")
    bullets = []
    if dc.get("budget") is not None:
        met = "met" if dc["after_whole"] <= dc["budget"] else "NOT met: best effort, the cheapest counts found"
        bullets.append(f"budget {fmt_layer_cost(m, dc['budget'])} {unit}: predicted {fmt_layer_cost(m, dc['predicted'])}, "
                       f"measured {fmt_layer_cost(m, dc['after_whole'])} ({met}); "
                       f"{dc['before_whole'] / max(dc['after_whole'], 1e-12):.2f}× below the unpruned model")
    if dc.get("counts"):
        bullets.append("channels kept per group: " + ", ".join(f"{k} {v}/{dc['full'].get(k, '?')}"
                                                                for k, v in dc["counts"].items()))
    return Section("device_cost", "Where the time goes", text,
                   [Table(["layer", "ops", f"{unit} before", "share", f"{unit} after"], rows, {2, 3, 4})], bullets)
