"""search: the least-pruned model that meets a budget measured on a device (``edgeprune search`` as
a step); its best candidate becomes the ``pruned`` stage.  Candidates are trials run through the
executor (in-process or Ray)."""
from __future__ import annotations

import shutil
from typing import Literal, Optional

from pydantic import Field, field_validator

from edgeprune.budget import SEARCH_KEYS, budget_field
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.recipe.steps.base import Settings, StepType
from edgeprune.recipe.steps.prune import PrunedStageResult
from edgeprune.rundir import SearchInfo

SearchBudget = budget_field(SEARCH_KEYS, "the search step")


class SearchStep(Settings):
    """Prune to a budget measured on a device (``edgeprune search`` as a step); its best model is the pruned stage."""

    budget: SearchBudget = Field(
        description="limits all to be met, e.g. {latency_ms: 0.05} (p50 on the device, estimated board time on an "
                    "emulated board) or {size_kb: 40, macs: 1.0e6}")
    device: str = "host"
    max_drop: float = Field(0.5, ge=0.0, description="allowed validation-accuracy loss in points")
    criterion: str = "l1"
    ratios: list[float] = [0.2, 0.4, 0.6, 0.8]
    quant: Literal["none", "int8", "fp16", "dynamic"] = "none"
    finetune_epochs: int = Field(1, ge=0)
    round_to: Optional[int] = Field(None, ge=1, le=256, description="default: the device profile's")
    sensitivity: bool = True
    protect: list[str] = []
    protect_first: Optional[bool] = Field(None, description="keep the first weight layer whole: true always, false "
                                          "never; unset: only when that pins no group shared with other layers")
    runs: int = Field(50, ge=1)
    max_train_samples: Optional[int] = Field(10000, gt=0, description="training images per candidate's fine-tuning")
    executor: Literal["inprocess", "ray"] = "inprocess"
    ray_address: Optional[str] = None

    @field_validator("ratios")
    @classmethod
    def _fractions(cls, v):
        if not v or any(not 0.0 < r < 1.0 for r in v):
            raise ValueError("ratios are fractions in (0, 1), e.g. [0.2, 0.4, 0.6]")
        return v


class SearchResult(PrunedStageResult):
    kind: Literal["search"] = "search"
    search: SearchInfo

    def merge(self, ctx) -> None:
        ctx.metrics["search"] = self.search.model_dump(mode="json", exclude_none=True)
        super().merge(ctx)


def run(ctx, spec: SearchStep) -> dict:
    """Budget search on the current model; the most accurate candidate within the budget becomes `pruned`."""
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.devicecost.search import budget_search
    from edgeprune.recipe.steps.stages import current_model, leave_stage, write_weight_histograms
    from edgeprune.strategies.trialio import fresh_model_file

    model = current_model(ctx)
    res = budget_search(model, ctx.dataset, device=spec.device, budget=dict(spec.budget), max_drop=spec.max_drop,
                        run_dir=ctx.run_dir, executor=get_executor(spec.executor, address=spec.ray_address),
                        criterion=spec.criterion, round_to=spec.round_to, ratios=spec.ratios,
                        use_sensitivity=spec.sensitivity, quant=spec.quant, finetune_epochs=spec.finetune_epochs,
                        max_train_samples=spec.max_train_samples, runs=spec.runs, protect=spec.protect,
                        protect_first=spec.protect_first, seed=ctx.recipe.seed)
    if res.best is None:
        raise EdgepruneError(f"search: no candidate met {spec.budget.describe()} on {spec.device} "
                             f"(largest ratio tried {max(spec.ratios)}; trials in {ctx.run_dir / 'search'})",
                             "add larger ratios, loosen the budget, or set quant: int8")
    best = fresh_model_file(ctx.run_dir / res.best["model_path"])
    plan_file = ctx.run_dir / "search" / f"plan-{res.best['trial']:03d}.json"
    if plan_file.exists():  # the removed-channels table of the report reads plan.json
        shutil.copyfile(plan_file, ctx.path("plan.json"))
    before_stage = ctx.current_stage
    stage_metrics = leave_stage(ctx, "pruned", best)
    weights_path = write_weight_histograms(ctx, before_stage, model, best)
    b = res.best
    search = {"status": res.status, "summary_path": "search/summary.json", "budget": dict(spec.budget),
              "device": spec.device, "best_trial": b["trial"], "best_ratio": b["settings"]["ratio"],
              "best_measured": b["measured"], "trials": len(res.trials)}
    if res.status != "ok":
        search["warning"] = (f"the best model within the budget loses {b['measured']['accuracy_drop_points']:.2f} "
                             f"validation points (> max_drop {spec.max_drop:g}); fine-tuning follows")
        ctx.log(f"warning: {search['warning']}")
    result = {"kind": "search", "search": search, "weights_path": weights_path}
    if spec.sensitivity:
        result["sensitivity_path"] = "sensitivity.json"
    return result | {"stage": "pruned", "stage_metrics": stage_metrics}


STEP = StepType("search", SearchStep, SearchResult, run, stage="pruned",
                device_keys=("device",), layer_keys=("protect",))
