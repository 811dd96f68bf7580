"""Reports of a run directory: report.json (machine), report.md (terminal, code host), report.html (plots).

Light at import: the heavy parts (matplotlib, TensorFlow for the weight histograms) load when used.
"""
from __future__ import annotations

from pathlib import Path

FORMATS = ("json", "md", "html")


def build_report(run_dir, *, weights: bool = True) -> dict:
    from edgeprune.report.build import build_report as _build

    return _build(run_dir, weights=weights)


def summary_table(report: dict, title: str | None = None):
    from edgeprune.report.table import summary_table as _table

    return _table(report, title)


def write_reports(run_dir, formats=FORMATS, report: dict | None = None) -> list[Path]:
    """Write report.json / report.md / report.html into the run directory; returns their paths."""
    import json

    from edgeprune.errors import EdgepruneError

    run_dir = Path(run_dir)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise EdgepruneError(f"unknown report format(s) {unknown}", f"use some of {', '.join(FORMATS)}")
    if report is None:
        report = build_report(run_dir)
    written = []
    for fmt in formats:
        if fmt == "json":
            text = json.dumps(report, indent=1) + "\n"
        elif fmt == "md":
            from edgeprune.report.markdown import render_markdown

            text = render_markdown(report)
        else:
            from edgeprune.report.html import render_html

            text = render_html(report)
        written.append(_write_atomic(run_dir / f"report.{fmt}", text))
    return written


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["FORMATS", "build_report", "summary_table", "write_reports"]
