"""The one budget: limits on a pruned model's cost, every one of them to be met.

Used by ``edgeprune prune --budget``, ``edgeprune search --budget``, the recipe's ``prune`` (device-cost
allocation) and ``search`` steps, and the report.  One set of keys (:data:`KEYS`), one parser for
``KEY=VALUE`` text and for mappings from YAML or Python (:meth:`Budget.parse`), one validation
(known keys, each once, positive finite numbers), and one conversion to a device's own metric
(:meth:`Budget.device_limits`).  A consumer that cannot measure some key says so with
:meth:`Budget.require` — in an error, not with a key list of its own.

Importable without TensorFlow (pydantic only): a bad budget is refused before any work.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Iterable, Mapping

from pydantic import AfterValidator
from pydantic_core import core_schema

from edgeprune.errors import EdgepruneError

# every key a budget may limit, with what it means
KEYS: dict[str, str] = {
    "latency_ms": "the device's time per inference in ms: the measured p50 on a real device, the estimated board "
                  "time on an emulated board",
    "size_kb": "the exported file's size in KiB",
    "macs": "multiply-accumulates per inference",
    "instructions": "instructions per inference (emulated boards)",
    "reduction": "r× below the unpruned model in the device's metric",
}
EXAMPLE = "latency_ms=2.5"
# what each consumer measures, so what its budget may limit: a search trial measures these (a reduction
# needs a baseline cost, which the device-cost allocation has); the allocation costs the device's metric
# (latency_ms, instructions), the file, and a reduction
SEARCH_KEYS = ("latency_ms", "size_kb", "macs", "instructions")
ALLOCATION_KEYS = ("latency_ms", "instructions", "size_kb", "reduction")
# the name a device cost table gives the device's time, per key; latency_ms is board_ms on an emulated board
DEVICE_TIME = ("latency_ms", "board_ms")


class BudgetError(EdgepruneError, ValueError):
    """A budget that is not a set of known, positive limits (a ValueError too, so pydantic reports it in place)."""


TEXT_FIX = f"write KEY=VALUE with KEY one of {', '.join(KEYS)}, e.g. {EXAMPLE}"
MAPPING_FIX = f"give positive limits on {', '.join(KEYS)}, e.g. {{latency_ms: 2.5}}"


def _number(key: str, value: Any, shown: str, fix: str) -> float:
    if isinstance(value, bool):
        raise BudgetError(f"bad budget {shown}: {key} needs a number, not {value}", fix)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"bad budget {shown}: {key} needs a number, not {value!r}", fix) from None
    if not math.isfinite(number) or number <= 0:
        raise BudgetError(f"bad budget {shown}: {key} must be a positive limit, not {value}", fix)
    return number


class Budget(dict):
    """``{key: limit}``: validated limits, all to be met.  A dict, so it compares, prints and serialises as one.

    Build one with :meth:`parse` (text, a mapping, a list of ``KEY=VALUE`` items, or a Budget).
    """

    def __init__(self, limits: Mapping[str, Any] | None = None):
        if not isinstance(limits, Mapping):
            raise BudgetError(f"bad budget {limits!r}: a budget is a mapping of limits", MAPPING_FIX)
        if not limits:
            raise BudgetError("the budget is empty: give at least one limit", MAPPING_FIX)
        shown = "{" + ", ".join(f"{k}: {v}" for k, v in limits.items()) + "}"
        checked = {}
        for key, value in limits.items():
            if key not in KEYS:
                raise BudgetError(f"bad budget {shown}: unknown key '{key}'", MAPPING_FIX)
            checked[key] = _number(key, value, shown, MAPPING_FIX)
        super().__init__(checked)

    # -- parsing -----------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: Any) -> "Budget":
        """A Budget from ``"latency_ms=2.5"``, ``"latency_ms=2.5,size_kb=28"``, ``["latency_ms=2.5", "size_kb=28"]``
        (the CLI's repeated ``--budget``), ``{"latency_ms": 2.5}`` (YAML, Python) or a Budget."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, Mapping):
            return cls(value)
        if isinstance(value, str):
            items = [part for part in value.split(",") if part.strip()] or [value]
        elif isinstance(value, Iterable):
            items = list(value)
        else:
            raise BudgetError(f"bad budget {value!r}: a budget is KEY=VALUE text or a mapping of limits", TEXT_FIX)
        if not items:
            raise BudgetError("the budget is empty: give at least one limit", TEXT_FIX)
        limits: dict[str, Any] = {}
        for item in items:
            if not isinstance(item, str):
                raise BudgetError(f"bad budget {item!r}: each limit is KEY=VALUE text", TEXT_FIX)
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep:
                raise BudgetError(f"bad budget '{item}': not KEY=VALUE", TEXT_FIX)
            if key not in KEYS:
                raise BudgetError(f"bad budget '{item}': unknown key '{key}'", TEXT_FIX)
            if key in limits:
                raise BudgetError(f"bad budget: {key} is limited twice ({key}={limits[key]}, {item.strip()})",
                                  "give each key once")
            limits[key] = _number(key, text.strip(), f"'{item}'", TEXT_FIX)
        return cls(limits)

    # -- what a consumer can use ---------------------------------------------------------------

    def require(self, keys: Iterable[str], who: str) -> "Budget":
        """Refuse the limits `who` cannot measure: ``require(("size_kb", "macs"), "the search step")``."""
        keys = tuple(keys)
        unusable = [k for k in self if k not in keys]
        if unusable:
            raise BudgetError(f"{who} cannot limit {', '.join(unusable)}: it measures {', '.join(keys)}",
                              f"give the budget as one or more of {', '.join(keys)}")
        return self

    def met_by(self, measured: Mapping[str, Any]) -> bool:
        """Whether every limit holds for `measured` ({key: value}); a value not measured is not met."""
        return all(measured.get(k) is not None and measured[k] <= lim for k, lim in self.items())

    def describe(self) -> str:
        """``latency_ms ≤ 0.4, size_kb ≤ 28`` (a reduction as ``reduction ≥ 6×``)."""
        return ", ".join(f"reduction ≥ {v:g}×" if k == "reduction" else f"{k} ≤ {v:g}" for k, v in self.items())

    def device_limits(self, device_metric: str) -> dict[str, float | tuple[str, float]]:
        """``{metric: limit}`` in the names of a device's cost table (``device_metric``: ``board_ms``,
        ``latency_ms`` or ``instructions``).

        ``latency_ms`` limits the device's time: the measured p50 on a real device, the estimated board
        time (``board_ms``) on an emulated board.  ``reduction`` becomes ``("reduction", r)`` on the
        device's metric, to resolve (:func:`resolve`) once the unpruned model's cost is known.
        """
        what = {"board_ms": "the estimated board time (ms)", "latency_ms": "p50 latency (ms)",
                "instructions": "instructions"}
        if device_metric not in what:
            raise ValueError(f"unknown device metric {device_metric!r}")
        asked_time = "latency_ms" if device_metric in DEVICE_TIME else device_metric
        limits: dict = {}
        for key, value in self.items():
            metric = device_metric if key == "reduction" else "board_ms" if (
                key == "latency_ms" and device_metric == "board_ms") else key
            if metric in ("instructions", "latency_ms", "board_ms") and metric != device_metric:
                raise BudgetError(f"the device is costed by {what[device_metric]}, not {key}",
                                  f"give the budget as {{{asked_time}: ...}} or {{reduction: r}}")
            if metric in limits:
                raise BudgetError(f"budget {dict(self)} limits {metric} twice", "keep one of the two")
            limits[metric] = ("reduction", value) if key == "reduction" else value
        return limits

    # -- pydantic ----------------------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        """As a pydantic field: validated by :meth:`parse` (a mapping, or KEY=VALUE text), dumped as a plain dict."""
        def validate(value):
            try:
                return cls.parse(value)
            except BudgetError as e:
                raise ValueError(_field_message(e)) from None

        return core_schema.no_info_plain_validator_function(
            validate, json_schema_input_schema=core_schema.dict_schema(core_schema.str_schema(), core_schema.float_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(dict))


def _field_message(e: BudgetError) -> str:
    return " ".join(e.problem.split()) + (f" ({e.fix})" if e.fix else "")


def budget_field(keys: Iterable[str], who: str):
    """A pydantic field type: a :class:`Budget` limiting only `keys` (what `who` can measure)."""
    keys = tuple(keys)

    def check(budget: Budget) -> Budget:
        try:
            return budget.require(keys, who)
        except BudgetError as e:
            raise ValueError(_field_message(e)) from None

    return Annotated[Budget, AfterValidator(check)]


def resolve(limits: Mapping[str, float | tuple], baseline: Mapping[str, float]) -> dict[str, float]:
    """Device limits with each ``("reduction", r)`` turned into the unpruned `baseline` cost divided by r."""
    return {m: (baseline[m] / lim[1] if isinstance(lim, tuple) else lim) for m, lim in limits.items()}


def budget_help(keys: Iterable[str] = tuple(KEYS)) -> str:
    """A --budget help text naming `keys` and what each means."""
    return "; ".join(f"{k}: {KEYS[k]}" for k in keys)
