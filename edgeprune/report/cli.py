"""`edgeprune report RUN_DIR` and `edgeprune report compare RUN_A RUN_B ...` (a typer sub-app: `app`).

`edgeprune report RUN_DIR` is short for `edgeprune report build RUN_DIR`: the group routes any first
argument that is not a sub-command name to `build`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from edgeprune import tables
from edgeprune.device_metric import RULE
from edgeprune.errors import EdgepruneError
from edgeprune.report import FORMATS, summary_table, write_reports
from edgeprune.report.build import build_report
from edgeprune.report.sections import answer_lines
from edgeprune.tables import rich_table

FORMAT_CHOICES = ("all", "json", "md", "html")


class _DefaultToBuild(TyperGroup):
    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultToBuild, add_completion=False, no_args_is_help=True,
                  subcommand_metavar="RUN_DIR | COMMAND [ARGS]...",
                  help="`edgeprune report RUN_DIR` rebuilds a run's report.json/.md/.html; "
                       "`edgeprune report compare RUN_A RUN_B ...` puts runs side by side.")


@app.command("build")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `edgeprune run`.")],
    format: Annotated[str, typer.Option("--format", "-f", help="all, json, md or html.")] = "all",
) -> None:
    """Rebuild report.json/.md/.html from the run directory, nothing re-measured (`report RUN_DIR` for short)."""
    if format not in FORMAT_CHOICES:
        raise EdgepruneError(f"unknown report format '{format}'", f"use one of {', '.join(FORMAT_CHOICES)}")
    _require_run_dir(run_dir)
    formats = FORMATS if format == "all" else (format,)
    report = build_report(run_dir, weights=any(f in ("md", "html", "json") for f in formats))
    paths = write_reports(run_dir, formats=formats, report=report)

    console = tables.console()
    console.print(summary_table(report))
    for line in answer_lines(report):
        print(line)  # the same one answer per device as `edgeprune run` ends with
    for p in paths:
        console.print(f"wrote {p}")


@app.command("compare")
def compare_cmd(
    run_dirs: Annotated[List[Path], typer.Argument(help="Two or more run directories.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for compare.md/compare.html "
                                                   "(default: the runs' common parent folder).")] = None,
) -> None:
    """Put several runs side by side: one table and accuracy-vs-cost/size plots with the Pareto front."""
    # compare draws plots with matplotlib: only for `report compare`
    from edgeprune.report.compare import comparison_table, write_comparison

    for d in run_dirs:
        _require_run_dir(d)
    out_dir = output or _common_parent(run_dirs)
    comparison, paths = write_comparison(run_dirs, out_dir)
    table = comparison_table(comparison)
    console = tables.console()
    console.print(rich_table(table.header, table.rows, right=table.right, title="edgeprune comparison",
                             caption=f"★ on the accuracy-vs-cost Pareto front across runs ({RULE})"))
    if comparison["note"]:
        console.print(f"note: {comparison['note']}")
    for p in paths:
        console.print(f"wrote {p}")


def _require_run_dir(run_dir: Path) -> None:
    if not (Path(run_dir) / "metrics.json").exists():
        raise EdgepruneError(f"no metrics.json in {run_dir}", "run `edgeprune run RECIPE --out DIR` first, then report on DIR")


def _common_parent(run_dirs: list[Path]) -> Path:
    return Path(os.path.commonpath([str(Path(d).resolve().parent) for d in run_dirs]))
