"""report: write report.json / report.md / report.html from what the steps before it measured."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.report import write_reports
from edgeprune.rundir import StepResult


class ReportStep(Settings):
    formats: list[Literal["json", "md", "html"]] = ["json", "md", "html"]


class ReportResult(StepResult):
    kind: Literal["report"] = "report"
    report_files: list[str]

    def merge(self, ctx) -> None:
        ctx.metrics["report_files"] = list(self.report_files)


def run(ctx, spec: ReportStep) -> dict:
    ctx.write_metrics()
    paths = write_reports(ctx.run_dir, formats=tuple(spec.formats))
    return {"kind": "report", "report_files": [str(Path(p).relative_to(ctx.run_dir)) for p in paths]}


STEP = StepType("report", ReportStep, ReportResult, run, writes=lambda spec: ("report",), last=True)
