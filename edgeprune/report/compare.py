"""Several runs side by side: one table (a run column added) and accuracy-vs-cost plots across runs."""
from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.device_metric import RULE
from edgeprune.report import plots
from edgeprune.report.build import build_report, pareto_marks
from edgeprune.report.html import figure_html, html_table, page
from edgeprune.report.markdown import md_table
from edgeprune.report.sections import Table
from edgeprune.report.table import cells, columns


def compare_runs(run_dirs: list[Path]) -> dict:
    """{"runs": [{name, run_dir, model, dataset}], "rows": [summary row + "run"]} with Pareto marks across runs."""
    if len(run_dirs) < 2:
        raise EdgepruneError("compare needs at least two run directories", "pass RUN_A RUN_B [...]")
    runs, rows = [], []
    names = _unique_names([Path(d) for d in run_dirs])
    for run_dir, name in zip(run_dirs, names):
        report = build_report(run_dir, weights=False)
        runs.append({"name": name, "run_dir": str(run_dir), "model": (report.get("recipe") or {}).get("model"),
                     "dataset": report["dataset"].get("name"), "test_samples": report["dataset"].get("test")})
        rows += [{**r, "run": name} for r in report["rows"]]
    for device in {r["device"] for r in rows if r["device"]}:
        idx = [i for i, r in enumerate(rows) if r["device"] == device]
        for i, on_front in pareto_marks(rows, idx).items():
            rows[i]["pareto_latency"] = on_front
    datasets = {(r["dataset"], r["test_samples"]) for r in runs}
    note = None
    if len(datasets) > 1:
        note = f"the runs were measured on different test sets {sorted(datasets, key=str)}: accuracies are not directly comparable"
    return {"generated": dt.datetime.now().isoformat(timespec="seconds"), "runs": runs, "rows": rows, "note": note}


def _unique_names(run_dirs: list[Path]) -> list[str]:
    names = [d.name for d in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in run_dirs]


def comparison_table(comparison: dict) -> Table:
    cols = columns(comparison["rows"])
    return Table(["run"] + cols, [[r["run"]] + cells(r, cols) for r in comparison["rows"]],
                 {i + 1 for i, c in enumerate(cols) if c not in ("stage", "format", "device", "parity")})


def render_compare_markdown(comparison: dict) -> str:
    out = ["# edgeprune comparison", ", ".join(f"{r['name']} ({r['model']} on {r['dataset']}, {r['run_dir']})" for r in comparison["runs"]),
           md_table(comparison_table(comparison)),
           f"★ = on the accuracy-vs-cost Pareto front of its device across all runs ({RULE})."]
    if comparison["note"]:
        out.append(f"Note: {comparison['note']}.")
    return "\n\n".join(out) + "\n"


def render_compare_html(comparison: dict) -> str:
    run_of = lambda r: r["run"]  # noqa: E731
    body = ["<h1>edgeprune comparison</h1>",
            "<ul>" + "".join(f"<li>{escape(r['name'])}: {escape(str(r['model']))} on {escape(str(r['dataset']))} "
                             f"({escape(r['run_dir'])})</li>" for r in comparison["runs"]) + "</ul>",
            html_table(comparison_table(comparison)),
            f"<p class=\"legend\">★ = on the accuracy-vs-cost Pareto front of its device across all runs ({escape(RULE)}).</p>"]
    if comparison["note"]:
        body.append(f"<p class=\"note\">Note: {escape(comparison['note'])}.</p>")
    body.append(figure_html(plots.tradeoff_figure(comparison["rows"], "device", run_of), f"accuracy vs cost, all runs ({RULE})"))
    body.append(figure_html(plots.tradeoff_figure(comparison["rows"], "size", run_of), "accuracy vs file size, all runs"))
    return page("edgeprune comparison", "".join(body))


def write_comparison(run_dirs: list[Path], output_dir: Path) -> tuple[dict, list[Path]]:
    """Write compare.md and compare.html into output_dir."""
    comparison = compare_runs(run_dirs)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (("compare.md", render_compare_markdown(comparison)), ("compare.html", render_compare_html(comparison))):
        path = output_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return comparison, paths
