"""The export-target registry: one dispatch point for every file format edgeprune writes and runs.

An export target (tflite, onnx, ...) is one module that defines ``TARGET = ExportTarget(...)``
plus one line in `BUILTIN` below. The target says its file suffix, the precisions it can write,
how to write a file, how to run it on the host (parity, evaluation), how to read a file's
precision back, and which interpreter of a device profile runs it. The export CLI, the recipe's
export step, the host runtime, the parity check and the device harness all go through here.

This module imports no TensorFlow; the target modules import their converters lazily.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edgeprune.errors import DeviceError, EdgepruneError

# "module:attribute" of each built-in target, in the order tools list them.
BUILTIN = (
    "edgeprune.export.tflite:TARGET",
    "edgeprune.export.onnx:TARGET",
    "edgeprune.export.ort:TARGET",
)

# Every precision name any target may declare; what each means for the parity check is in export/parity.py.
PRECISIONS = {
    "none": "float32",
    "fp16": "float16 weights",
    "int8": "full integer (int8 weights and activations)",
    "dynamic": "int8 weights, float activations",
    "mixed": "int8 with chosen layers kept float",
    "sparse": "float32 with the 1×1 conv kernels stored sparse (XNNPACK's sparse path; export/sparse_1x1.py)",
}


@dataclass(frozen=True)
class ExportOptions:
    """Settings a target may use; each target ignores what does not apply to it."""

    int8_io: bool = False        # tflite: int8 input/output tensors
    opset: int = 15              # onnx: opset
    keep_float: tuple[str, ...] = ()  # precision "mixed": Keras layer names kept float


@dataclass(frozen=True)
class ExportTarget:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    # write(model, path, *, quant, calibration, options) -> Path; writes `path` atomically and checks it loads
    write: Callable
    # predict(path, x, batch_size, num_threads) -> float outputs; inputs/outputs (de)quantized
    predict: Callable
    # read_precision(path) -> one of `precisions` (or "dynamic"), read from the file itself
    read_precision: Callable
    # field of the device profile's `interpreter:` mapping that names the runtime for this file type
    interpreter_key: str
    # precisions that need representative samples when the model is not a QAT model
    calibrated: frozenset = field(default_factory=lambda: frozenset({"int8", "mixed"}))
    description: str = ""
    # check_file(path) -> None; raises EdgepruneError in one line when the file is not a well-formed file of
    # this kind (called before any runtime touches it); None: only the empty-file check applies
    check_file: Optional[Callable] = None
    # sidecars(path) -> files write() puts beside `path` that belong with it (e.g. the .ort operators config)
    sidecars: Callable = lambda path: []

    def needs_calibration(self, precision: str, *, qat: bool) -> bool:
        return precision in self.calibrated and not qat

    def check_precision(self, precision: str) -> str:
        if precision not in self.precisions:
            raise EdgepruneError(f"precision '{precision}' is not available for {self.name}",
                                 f"use one of {', '.join(self.precisions)}")
        return precision

    def interpreter_on(self, profile) -> str:
        """The interpreter `profile` runs this file type with; a DeviceError when it has none."""
        which = getattr(profile.interpreter, self.interpreter_key, None)
        if which is None:
            raise DeviceError(
                f"device {profile.name} has no {self.interpreter_key.upper()} runtime for {self.suffix} files "
                f"(interpreter.{self.interpreter_key} is null in its profile)",
                "benchmark another export format on it")
        return which


_TARGETS: dict[str, ExportTarget] = {}


def register(target: ExportTarget) -> ExportTarget:
    unknown = [p for p in target.precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"target {target.name}: unknown precisions {unknown} (known: {', '.join(PRECISIONS)})")
    clash = next((t for t in _TARGETS.values() if t.suffix == target.suffix and t.name != target.name), None)
    if clash:
        raise ValueError(f"target {target.name}: suffix {target.suffix} is already {clash.name}'s")
    _TARGETS[target.name] = target
    return target


def targets() -> dict[str, ExportTarget]:
    """All registered targets by name (built-ins are imported on first use)."""
    if not _TARGETS:
        for spec in BUILTIN:
            module, attr = spec.split(":")
            register(getattr(importlib.import_module(module), attr))
    return dict(_TARGETS)


def target_names() -> tuple[str, ...]:
    return tuple(targets())


def get_target(name: str) -> ExportTarget:
    found = targets().get(str(name).lower())
    if found is None:
        raise EdgepruneError(f"unknown export format '{name}'", f"use one of {', '.join(targets())}")
    return found


def suffixes() -> tuple[str, ...]:
    return tuple(t.suffix for t in targets().values())


def target_for_file(path) -> ExportTarget:
    """The target whose suffix `path` has, or one clear error."""
    suffix = Path(path).suffix.lower()
    found = next((t for t in targets().values() if t.suffix == suffix), None)
    if found is None:
        raise EdgepruneError(f"unknown model file type '{suffix}' for {path}",
                             f"use a {' or '.join(suffixes())} file")
    return found


def find_target_for_file(path) -> Optional[ExportTarget]:
    suffix = Path(path).suffix.lower()
    return next((t for t in targets().values() if t.suffix == suffix), None)


def all_precisions() -> tuple[str, ...]:
    """Precisions that at least one target writes, in PRECISIONS order."""
    have = {p for t in targets().values() for p in t.precisions}
    return tuple(p for p in PRECISIONS if p in have)
