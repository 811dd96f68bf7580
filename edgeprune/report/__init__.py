"""Reports of a run directory: report.json (machine), report.md (terminal, code host), report.html (plots).

Light at import (the CLI's --help loads this package): matplotlib loads when HTML is rendered.
The report reads only files in the run directory and never imports TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

from edgeprune import fileio
from edgeprune.errors import EdgepruneError
from edgeprune.report.build import build_report as _build
from edgeprune.report.markdown import render_markdown
from edgeprune.report.table import summary_table as _table

FORMATS = ("json", "md", "html")


def build_report(run_dir, *, weights: bool = True) -> dict:
    return _build(run_dir, weights=weights)


def summary_table(report: dict, title: str | None = None):
    return _table(report, title)


def write_reports(run_dir, formats=FORMATS, report: dict | None = None) -> list[Path]:
    """Write report.json / report.md / report.html into the run directory; returns their paths."""
    run_dir = Path(run_dir)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise EdgepruneError(f"unknown report format(s) {unknown}", f"use some of {', '.join(FORMATS)}")
    if report is None:
        report = build_report(run_dir)
    written = []
    for fmt in formats:
        if fmt == "json":
            text = fileio.dumps(report) + "\n"
        elif fmt == "md":
            text = render_markdown(report)
        else:
            # the HTML report's plots load matplotlib: only when that format is written
            from edgeprune.report.html import render_html

            text = render_html(report)
        written.append(fileio.write_text(run_dir / f"report.{fmt}", text))
    return written


__all__ = ["FORMATS", "build_report", "summary_table", "write_reports"]
