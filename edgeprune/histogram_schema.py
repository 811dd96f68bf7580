"""One layer's weight histogram, as weights.json (:mod:`edgeprune.rundir`) and report.json
(:mod:`edgeprune.report.schema`) both store it: a neutral low module, so neither imports the other for it."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict


class WeightHistogram(BaseModel):
    """|w| of one layer's kernel: counts on shared bin edges; removed = before − after."""
    model_config = ConfigDict(extra="forbid")

    layer: str
    type: str
    bin_edges: list[float]
    before: list[int]
    after: list[int]
    removed: list[int]
    count_before: int
    count_after: int
    mean_abs_before: float
    mean_abs_after: Optional[float] = None
