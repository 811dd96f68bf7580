"""Estimated board time of an emulated run: what the board would take, from what the emulator saw.

The emulator runs the board's own kernels (the fake /proc/cpuinfo and the CPU model make XNNPACK
pick them) but knows nothing of time.  Its instruction counter reports, per inference, every
executed instruction by shape ("fmla v.4s, v.4s, v.s[0]", "smlal v.8h, v.8b, v.8b") and the data
accesses through the board's cache hierarchy.  A throughput model turns that into cycles:

    cycles = max( instructions / issue width,
                  micro-ops on each execution unit (or group of units) / units in it,
                  lines missed at each cache level * 64 bytes / the next level's bandwidth )

The pipe use of each instruction shape comes from the core's scheduling model
(``devices/cores/<core>.yaml``, from LLVM); the clock, caches and bandwidths from the
board section of the device profile, each with its source.  Instruction counts alone treat an
int8 SMLAL and a float FMLA alike, but a Cortex-A72 retires two of the first per cycle and one of
the second: counts ranked int8 below float32 on the Pi 4, which real boards contradict.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeprune.errors import DeviceError
from edgeprune.harness.shipped_devices import CORES_DIR

LINE_BYTES = 64


class CacheLevel(BaseModel):
    """One data cache level; `refill_bytes_per_cycle` is how fast the next level out (not DRAM) refills it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    bytes: int = Field(gt=0)
    ways: int = Field(gt=0)
    refill_bytes_per_cycle: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _whole_sets(self):
        if self.bytes % LINE_BYTES or (self.bytes // LINE_BYTES) % self.ways:
            raise ValueError(f"{self.name}: {self.bytes} bytes in {self.ways} ways is not a whole number of 64-byte sets")
        return self


class BoardSpec(BaseModel):
    """The real board an emulated profile stands for (``board:`` in the device profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str                     # "Raspberry Pi 4 Model B"
    core: str                     # a file in devices/cores/
    clock_ghz: float = Field(gt=0)
    caches: tuple[CacheLevel, ...]
    dram_gb_s: float = Field(gt=0)  # sustained bandwidth of the board's memory
    sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _levels(self):
        if not self.caches:
            raise ValueError("board.caches needs at least the L1 data cache")
        for level in self.caches[:-1]:
            if level.refill_bytes_per_cycle is None:
                raise ValueError(f"board.caches {level.name}: give refill_bytes_per_cycle (the next level's bandwidth)")
        if not (CORES_DIR / f"{self.core}.yaml").is_file():
            known = ", ".join(sorted(p.stem for p in CORES_DIR.glob("*.yaml")))
            raise ValueError(f"board.core '{self.core}' is not a known core (known: {known})")
        return self

    def cache_arg(self) -> str:
        """The instruction counter's cache=... argument."""
        return "/".join(f"{c.bytes}:{c.ways}" for c in self.caches)


@dataclass(frozen=True)
class InstructionClass:
    name: str
    pattern: re.Pattern
    uops: dict[str, int]


@dataclass(frozen=True)
class CoreModel:
    name: str
    source: str
    issue_width: int
    units: dict[str, int]
    groups: dict[str, tuple[str, ...]]
    classes: tuple[InstructionClass, ...]

    def classify(self, key: str) -> InstructionClass:
        for cls in self.classes:
            if cls.pattern.search(key):
                return cls
        raise DeviceError(f"core model {self.name} has no class for '{key}'", "end its classes with a catch-all")


@functools.lru_cache(maxsize=None)
def load_core(name: str) -> CoreModel:
    path = CORES_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    units = {str(k): int(v) for k, v in data["units"].items()}
    groups = {str(k): tuple(v) for k, v in (data.get("groups") or {}).items()}
    classes = []
    for c in data["classes"]:
        for unit in c["uops"]:
            if unit not in units and unit not in groups:
                raise DeviceError(f"core model {path}: class {c['name']} uses unknown unit {unit}", "fix the file")
        classes.append(InstructionClass(c["name"], re.compile(c["match"]), {k: int(v) for k, v in c["uops"].items()}))
    return CoreModel(name=data["name"], source=data["source"], issue_width=int(data["issue_width"]),
                     units=units, groups=groups, classes=tuple(classes))


@dataclass
class BoardTime:
    """One inference on the board, estimated."""

    ms: float
    cycles: float
    bound: str                                   # what sets the time: "V units", "issue", "DRAM", ...
    bounds: dict[str, float] = field(default_factory=dict)   # cycles each resource alone would need
    classes: dict[str, float] = field(default_factory=dict)  # instructions per class
    cache_misses: dict[str, float] = field(default_factory=dict)

    def as_dict(self, board: BoardSpec) -> dict:
        return {"ms": self.ms, "cycles": round(self.cycles), "bound": self.bound,
                "bounds": {k: round(v) for k, v in self.bounds.items()},
                "classes": {k: round(v) for k, v in sorted(self.classes.items(), key=lambda kv: -kv[1])},
                "cache_misses": {k: round(v) for k, v in self.cache_misses.items()},
                "board": board.name, "core": load_core(board.core).name, "clock_ghz": board.clock_ghz}


def _unit_bounds(core: CoreModel, uops: dict[str, float]) -> dict[str, float]:
    """Cycles each unit, and each group of units, needs for the micro-ops it must take."""
    bounds = {}
    for unit, n in core.units.items():
        bounds[f"{unit} unit{'s' if n > 1 else ''}"] = uops.get(unit, 0.0) / n
    for group, members in core.groups.items():
        load = uops.get(group, 0.0) + sum(uops.get(m, 0.0) for m in members)
        bounds[f"{group} units"] = load / sum(core.units[m] for m in members)
    return bounds


def estimate(mix: dict[str, float], misses: list[float] | None, board: BoardSpec) -> BoardTime:
    """`mix`: instructions per inference by key; `misses`: lines missed per inference at each cache level."""
    core = load_core(board.core)
    uops: dict[str, float] = {}
    classes: dict[str, float] = {}
    for key, n in mix.items():
        cls = core.classify(key)
        classes[cls.name] = classes.get(cls.name, 0.0) + n
        for unit, k in cls.uops.items():
            uops[unit] = uops.get(unit, 0.0) + n * k
    bounds = {"issue": sum(mix.values()) / core.issue_width, **_unit_bounds(core, uops)}
    named_misses = {}
    if misses:
        for i, (level, m) in enumerate(zip(board.caches, misses)):
            named_misses[level.name] = m
            if i + 1 < len(board.caches):
                bounds[f"{board.caches[i + 1].name} bandwidth"] = m * LINE_BYTES / level.refill_bytes_per_cycle
            else:
                bounds["DRAM bandwidth"] = m * LINE_BYTES / (board.dram_gb_s / board.clock_ghz)
    bound = max(bounds, key=bounds.get)
    cycles = bounds[bound]
    return BoardTime(ms=cycles / (board.clock_ghz * 1e6), cycles=cycles, bound=bound, bounds=bounds,
                     classes=classes, cache_misses=named_misses)
