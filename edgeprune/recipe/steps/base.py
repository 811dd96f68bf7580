"""What a recipe step is: one object holding its settings model, its run function, its result model
and what it reads from and writes into the run (model stages, exported files, measurements).

The runner builds the run from these declarations, and :mod:`edgeprune.recipe.plan_check` checks the
order of a recipe's steps from them before anything runs.  This module and the step modules' top
levels import no TensorFlow: a recipe is validated before TensorFlow loads, and each step imports
what it needs when it runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from edgeprune.rundir import StepResult

EXPORTS = "exports"  # the exported files (what a benchmark measures)


class Settings(BaseModel):
    """A step's settings in a recipe: strict, so a misspelt key is an error with its line."""

    model_config = ConfigDict(extra="forbid")


def _nothing(spec) -> tuple[str, ...]:
    return ()


def _its_stage(step: "StepType"):
    return lambda spec: (step.stage,) if step.stage else ()


@dataclass(frozen=True)
class StepType:
    """One kind of recipe step.

    stage: the model stage it leaves (``models/<stage>.keras``, or `stage_file`); the next step starts
    from it.  float_stage: that model is a float one (QAT's is not).  reads(spec): what must have been
    made by an earlier step (a model stage or ``EXPORTS``); the model source counts as the
    ``baseline`` stage.  writes(spec): what it makes (default: its stage).  last: it must be the last
    step (the report).  device_keys / layer_keys: its settings that name devices / model layers,
    checked before any work.  cache_extra(spec, specs, devices): what else its cached result depends on
    besides its settings (the devices it measures on)."""

    name: str
    settings: type[Settings]
    result: type[StepResult]
    run: Callable[[Any, Settings], dict]
    stage: str | None = None
    stage_file: str | None = None
    float_stage: bool = True
    reads: Callable[[Settings], tuple[str, ...]] = _nothing
    writes: Callable[[Settings], tuple[str, ...]] | None = None
    last: bool = False
    device_keys: tuple[str, ...] = ()
    layer_keys: tuple[str, ...] = ()
    cache_extra: Callable[[Settings, list, Any], Any] = field(default=lambda spec, specs, devices: None)

    def __post_init__(self):
        if self.stage and self.stage_file is None:
            object.__setattr__(self, "stage_file", f"models/{self.stage}.keras")
        if self.writes is None:
            object.__setattr__(self, "writes", _its_stage(self))

    def devices_named(self, spec) -> list[tuple[str, list[str]]]:
        """(key, device names) for each of this step's settings that name devices."""
        out = []
        for key in self.device_keys:
            value = getattr(spec, key, None)
            if value:
                out.append((key, [value] if isinstance(value, str) else list(value)))
        return out
