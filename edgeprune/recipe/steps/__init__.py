"""The recipe's steps, one module each (settings, run function, result, what it reads and writes).

``STEPS`` is the one registry: the schema validates a recipe's steps with it, the plan check orders
them by it and the runner runs them from it.  Importing it loads no TensorFlow."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, TypeAdapter

from edgeprune.recipe.steps import benchmark, export, finetune, prune, quantize, report, search, sparsity_train, train
from edgeprune.recipe.steps.base import EXPORTS, Settings, StepType
from edgeprune.rundir import StepResult

STEPS: dict[str, StepType] = {m.STEP.name: m.STEP for m in (
    train, sparsity_train, prune, search, finetune, quantize, export, benchmark, report)}

# the model stages in the order a run makes them, and their files in the run directory
STAGE_FILES: dict[str, str] = {s.stage: s.stage_file for s in STEPS.values() if s.stage}
MODEL_STAGES = tuple(STAGE_FILES)
FLOAT_STAGES = tuple(dict.fromkeys(s.stage for s in STEPS.values() if s.stage and s.float_stage))

_RESULT = TypeAdapter(Annotated[Union[tuple(s.result for s in STEPS.values())], Field(discriminator="kind")])  # noqa: UP007


def step_result(data) -> StepResult:
    """A step's result (a model already, or the dict a run function returned or the state cache held), validated."""
    return data if isinstance(data, StepResult) else _RESULT.validate_python(data)


__all__ = ["EXPORTS", "FLOAT_STAGES", "MODEL_STAGES", "STAGE_FILES", "STEPS", "Settings", "StepType", "step_result"]
