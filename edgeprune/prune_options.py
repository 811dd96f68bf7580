"""One set of prune options, validated in one place, for ``edgeprune prune``, the recipe's ``prune`` step
and the Python API, with the same defaults (BatchNorm recalibration included, when data is given).

Importable without TensorFlow (pydantic only), so a bad option is refused before any work.  The recipe's
``PruneStep`` adds what only a recipe does (schedule, sensitivity, verify) on top of :class:`PruneOptions`;
:func:`edgeprune.devicecost.prune.prune_with_options` applies them to a model.
"""
from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeprune.budget import ALLOCATION_KEYS, budget_field
from edgeprune.errors import EdgepruneError

AllocationBudget = budget_field(ALLOCATION_KEYS, "device-cost allocation")
PRECISIONS = ("float32", "float16", "int8", "mixed")
DEVICE_COST_ONLY = ("device", "budget", "keep_float", "weigh", "best_effort", "compare_devices")


def device_cost_first_layer(protect_first: bool | None) -> bool:
    """Device-cost allocation's protect_first: only an explicit True protects the first layer; unset (None)
    means False, the measured cost decides about it too.  The one place this rule lives."""
    return bool(protect_first)


class PruneOptions(BaseModel):
    """What to prune and how: by one ratio per group, or (``allocation: device_cost``) by measured device cost."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ratio: float = Field(0.5, ge=0.0, lt=1.0)
    criterion: str = "l1"
    global_pruning: bool = Field(False, alias="global")
    round_to: int = Field(1, ge=1, le=256)
    min_channels: int = Field(1, ge=1)
    protect: list[str] = []
    protect_first: Optional[bool] = Field(None, description="keep the first weight layer whole: true always, false "
                                          "never; unset: only when that pins no group shared with other layers "
                                          "(device-cost allocation: unset means false)")
    overrides: dict[str, float] = {}
    aggregate: Literal["sum", "mean", "max"] = "mean"
    strict: bool = Field(False, description="stop at a layer the engine cannot follow instead of keeping its groups whole")
    recalibrate_bn: bool = Field(True, description="re-estimate BatchNorm moving statistics on training batches after "
                                                   "surgery (when data is given)")
    allocation: Literal["ratio", "device_cost"] = Field(
        "ratio", description="ratio: the same ratio per group; device_cost: channels per group from measured device cost")
    device: Optional[str] = Field(None, description="device_cost: the device whose per-op cost table decides")
    budget: Optional[AllocationBudget] = Field(
        None, description="device_cost: limits all to be met, e.g. {latency_ms: 0.4, size_kb: 28} or {reduction: 6.0}; "
                          "latency_ms is the estimated board time on an emulated board")
    precision: Literal["float32", "float16", "int8", "mixed", "auto"] = Field(
        "int8", description="device_cost: the precision to cost; auto: chosen per layer with the channels (int8, "
                            "or a mixed file keeping float the layers whose float ops cost less on the device)")
    keep_float: list[str] = Field([], description="device_cost with precision mixed: the layers kept float")
    max_group_ratio: float = Field(0.95, gt=0.0, lt=1.0, description="device_cost: most of a group that may go")
    best_effort: bool = Field(False, description="device_cost: a budget no channel counts meet ships the cheapest found "
                                                 "(marked in the report) instead of stopping")
    compare_devices: list[str] = Field(
        [], description="device_cost: other devices whose allocation under the same budget is costed on `device` too; "
                        "one that meets the budget there losing less is taken")
    weigh: Literal["score", "accuracy"] = Field(
        "score", description="device_cost: what a step loses — the share of its group's channel score, or the "
                             "validation accuracy lost with that group alone cut to the count (one trial per count)")

    # settings device_cost chooses itself (a subclass adds its own, e.g. the recipe's schedule and sensitivity)
    DEVICE_COST_EXCLUDES: ClassVar[tuple[str, ...]] = ("global", "overrides")

    def _set_excludes(self) -> list[str]:
        """The DEVICE_COST_EXCLUDES names that are set away from their defaults."""
        values = {"global": self.global_pruning, "overrides": self.overrides,
                  "schedule": getattr(self, "schedule", "oneshot") != "oneshot",
                  "sensitivity": getattr(self, "sensitivity", False)}
        return [name for name in self.DEVICE_COST_EXCLUDES if values.get(name)]

    @model_validator(mode="after")
    def _device_cost_settings(self):
        if self.allocation == "device_cost":
            if not self.device or not self.budget:
                raise ValueError("allocation device_cost needs device and budget, e.g. "
                                 "{device: qemu-aarch64, budget: {reduction: 6.0}}")
            if self._set_excludes():
                names = list(self.DEVICE_COST_EXCLUDES)
                raise ValueError("allocation device_cost chooses every group's channels itself: drop "
                                 + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]))
            if (self.precision == "mixed") != bool(self.keep_float):
                raise ValueError("precision mixed and keep_float go together, e.g. {precision: mixed, keep_float: [conv1]}")
        elif (self.device or self.budget or self.keep_float or self.weigh != "score" or self.best_effort
              or self.compare_devices):
            raise ValueError(f"{', '.join(DEVICE_COST_ONLY[:-1])} and {DEVICE_COST_ONLY[-1]} belong to "
                             "allocation: device_cost")
        return self

    @field_validator("overrides")
    @classmethod
    def _ratios_in_range(cls, v):
        for k, r in v.items():
            if not 0.0 <= r < 1.0:
                raise ValueError(f"override '{k}': ratio {r} not in [0, 1)")
        return v

    @property
    def device_cost(self) -> bool:
        return self.allocation == "device_cost"

    def first_layer(self) -> bool | None:
        """protect_first as the pruning engine takes it (device-cost allocation: unset means False)."""
        return device_cost_first_layer(self.protect_first) if self.device_cost else self.protect_first

    @classmethod
    def checked(cls, flag_names: dict[str, str] | None = None, **values) -> "PruneOptions":
        """Validate `values` (the CLI's and the Python API's way in); a bad one is one EdgepruneError line naming
        the option (as `flag_names` spells it, e.g. ``{"ratio": "--ratio"}``)."""
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            name = (flag_names or {}).get(loc, loc)
            msg = err["msg"].removeprefix("Value error, ")
            where = f"{name}: " if name else ""
            raise EdgepruneError(f"prune option {where}{msg}" + (f" ({len(e.errors())} problems)" if len(e.errors()) > 1 else ""),
                                 "see `edgeprune prune --help`") from None
