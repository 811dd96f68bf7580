"""report.html: one self-contained file (inline CSS, plots as base64 PNG, no URL of any kind)."""
from __future__ import annotations

from html import escape

from edgeprune.device_metric import RULE
from edgeprune.report import plots
from edgeprune.report.sections import LEGEND, Section, Table, headline, sections, summary

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
.legend,.note{color:#555;font-size:.85rem}figure{margin:1rem 0}figure img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.85rem}
"""


def html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td class=\"num\">{escape(c)}</td>" if i in t.right else f"<td>{escape(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(fig, caption: str) -> str:
    if fig is None:
        return ""
    return (f"<figure><img alt=\"{escape(caption)}\" src=\"{plots.png_data_uri(fig)}\">"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def section_html(s: Section, figures: list[str]) -> str:
    parts = [f"<section id=\"{escape(s.key)}\"><h2>{escape(s.title)}</h2>"]
    if s.text:
        parts.append(f"<p>{escape(s.text)}</p>")
    parts += figures
    parts += [html_table(t) for t in s.tables]
    if s.bullets:
        parts.append("<ul>" + "".join(f"<li>{escape(b)}</li>" for b in s.bullets) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def report_figures(report: dict) -> dict[str, list[str]]:
    """section key -> embedded figures; "summary" goes right under the summary table."""
    rows = report["rows"]
    out: dict[str, list[str]] = {"summary": [
        figure_html(plots.tradeoff_figure(rows, "device"), f"test accuracy vs cost per device ({RULE}); dashed: Pareto front"),
        figure_html(plots.tradeoff_figure(rows, "size"), "test accuracy vs file size per device; dashed: Pareto front"),
    ]}
    p = report.get("pruning")
    if p:
        out["pruning"] = [figure_html(plots.channels_figure(p["layers"]), "output channels per layer"),
                          figure_html(plots.macs_figure(p["layers"]), "MACs per layer")]
    w = report.get("weights")
    if w:
        out["weights"] = [figure_html(plots.weights_figure(w["layers"], w["before_stage"], w["after_stage"]),
                                      "|w| per layer: bars = before pruning (blue kept, red removed); line = after")]
    if report.get("device_cost"):
        out["device_cost"] = [figure_html(plots.device_cost_figure(report["device_cost"]), "cost per layer on the device, before and after")]
    if report.get("sensitivity"):
        out["sensitivity"] = [figure_html(plots.sensitivity_figure(report["sensitivity"]), "sensitivity curves")]
    if report.get("training"):
        out["training"] = [figure_html(plots.training_figure(report["training"]), "accuracy per epoch")]
    return {k: [f for f in v if f] for k, v in out.items()}


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def render_html(report: dict) -> str:
    figs = report_figures(report)
    body = [f"<h1>edgeprune report: {escape(report['run']['name'])}</h1>", f"<p>{escape(headline(report))}</p>",
            html_table(summary(report)), f"<p class=\"legend\">{escape(LEGEND)}</p>", *figs.get("summary", [])]
    body += [section_html(s, figs.get(s.key, [])) for s in sections(report)]
    return page(f"edgeprune report: {report['run']['name']}", "".join(body))
