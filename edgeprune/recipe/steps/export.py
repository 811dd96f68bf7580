"""export: write each shipped stage in each format and precision (``exports/``), each file checked
for parity with its Keras model; ``precision: auto`` writes the candidates a benchmark then chooses
from per device, with mixed files whose float layers come from each device's measured cost."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import AfterValidator, Field, field_validator

from edgeprune.devicecost.precision import plan_mixed
from edgeprune.errors import DeviceError, EdgepruneError
from edgeprune.export.metadata import write_tflite_metadata
from edgeprune.export.parity import assert_parity, check_parity
from edgeprune.export.sparse_1x1 import STORED_DENSE, SparseNotUsable, sparse_1x1_problems
from edgeprune.export.targets import ExportOptions, all_precisions, get_target, target_names
from edgeprune.harness.backends import backend_for
from edgeprune.harness.profiles import get_profile
from edgeprune.recipe.steps.base import EXPORTS, Settings, StepType
from edgeprune.rundir import ExportRow, StepResult


def _export_format(v: str) -> str:
    if v not in target_names():
        raise ValueError(f"unknown export format '{v}' (known: {', '.join(target_names())})")
    return v


def _export_precision(v: str) -> str:
    if v not in all_precisions():
        raise ValueError(f"unknown precision '{v}' (known: {', '.join(all_precisions())})")
    return v


class ExportStep(Settings):
    formats: list[Annotated[str, AfterValidator(_export_format)]] = ["tflite", "onnx"]
    stages: Optional[dict[str, list[Annotated[str, AfterValidator(_export_precision)]]]] = Field(
        None, description="stage -> quant modes; default: each float stage as float, the QAT stage as int8")
    opset: int = Field(15, ge=13, le=18)
    parity_tolerance: float = Field(1e-4, gt=0.0)
    precision: Optional[Union[Literal["auto"], list[Annotated[str, AfterValidator(_export_precision)]]]] = Field(
        None, description="precisions of the shipped stage (the QAT stage as int8 plus its float parent): a list, or "
                          "auto (float32, float16, int8, mixed, and sparse when XNNPACK's sparse 1×1 path can run the "
                          "float file; per device the cheapest within max_accuracy_drop is kept)")
    max_accuracy_drop: float = Field(0.5, ge=0.0, description="points below the most accurate precision (precision: auto)")
    keep_float: Optional[list[str]] = Field(
        None, description="layers a mixed file keeps float; default: chosen per device from measured per-layer cost")
    devices: Optional[list[str]] = Field(
        None, description="devices a mixed file is chosen for; default: the benchmark step's (or --device)")

    @field_validator("keep_float")
    @classmethod
    def _some_layers(cls, v):
        if v is not None and not v:
            raise ValueError("name at least one layer, or leave keep_float out to choose per device")
        return v


class ExportResult(StepResult):
    kind: Literal["export"] = "export"
    exports: list[ExportRow]
    precision: Optional[dict[str, Any]] = None  # precision: auto|list — mode, shipped stages, budget, mixed plans
    notes: list[str] = []  # files not written, and why (a sparse file XNNPACK would run dense)
    RECORDED: ClassVar = ("notes",)

    def merge(self, ctx) -> None:
        ctx.metrics["exports"] = [e.model_dump(mode="json") for e in self.exports]
        if self.precision is not None:
            ctx.metrics["precision"] = self.precision

    def artifacts(self) -> list[str]:
        return [e.path for e in self.exports]


AUTO_PRECISIONS = ("none", "fp16", "int8", "mixed", "sparse")  # sparse: only when the float file qualifies


def run(ctx, spec: ExportStep) -> dict:
    # TensorFlow loads when a step runs, not while the recipe is validated
    from edgeprune.recipe.steps.stages import current_model, float_parent, load_stage_model

    if ctx.current_stage is None:  # a recipe that only quantizes and exports a given model
        current_model(ctx)
    ds = ctx.dataset
    x, y = ds.x_test, ds.y_test
    ptq = ctx.ptq or {}
    calib = ds.calibration_samples(ptq.get("calibration_samples", 200), seed=ctx.recipe.seed)
    rows, notes = [], []
    for stage, quant in export_targets(ctx, spec):
        model = load_stage_model(ctx, stage)
        for fmt in spec.formats:
            target, q = get_target(fmt), quant
            if q not in target.precisions:
                continue  # e.g. onnx covers float and int8 (QDQ), not fp16/dynamic/mixed/sparse
            if q == "sparse":
                problems = _sparse_problems(ctx, rows, stage, fmt)
                if problems:
                    notes.append(_sparse_note(ctx, stage, problems))
                    continue
            files = [{"name": f"{stage}-{q}", "keep_float": (), "extra": {}}]
            if q == "mixed":
                files = [{"name": _mixed_name(stage, m["keep_float"]), "keep_float": tuple(m["keep_float"]),
                          "extra": {"keep_float": m["keep_float"], "devices": m["devices"], "layer_costs": m["tables"]}}
                         for m in _mixed_files(ctx, spec, model, calib)]
            for f in files:
                rel = f"exports/{f['name']}{target.suffix}"
                path = ctx.path(rel)
                t = time.perf_counter()
                options = ExportOptions(int8_io=bool(ptq.get("int8_io")) and q == "int8", opset=spec.opset,
                                        keep_float=f["keep_float"])
                try:
                    target.write(model, path, quant=q, options=options,
                                 calibration=calib if target.needs_calibration(q, qat=stage == "qat") else None)
                except SparseNotUsable as e:  # no float file to read first: the sparse file itself was checked
                    notes.append(_sparse_note(ctx, stage, e.problems))
                    continue
                parity = check_parity(path, model, x, y, tolerance=spec.parity_tolerance)
                parity.pop("file", None)
                sidecars = _sidecars(path, target, model, ds)
                rows.append({"stage": stage, "format": fmt, "quant": q, "path": rel,
                             "export_seconds": round(time.perf_counter() - t, 2), **parity, **f["extra"],
                             "sidecars": [str(p.relative_to(ctx.run_dir)) for p in sidecars]})
                ctx.log(f"      {rel}: {parity['file_bytes']:,} B, test acc {parity['accuracy']:.4f}, "
                        f"agreement {parity['top1_agreement']:.4f}, max|Δ| {parity['max_abs_diff']:.2e}")
                assert_parity(parity)
    result = {"kind": "export", "exports": rows, "notes": notes}
    if spec.precision is not None:
        shipped = [float_parent(ctx)] + (["qat"] if "qat" in ctx.metrics["stages"] else [])
        result["precision"] = {"mode": "auto" if spec.precision == "auto" else "list", "stages": shipped,
                               "max_accuracy_drop": spec.max_accuracy_drop}
    return result


def export_targets(ctx, spec: ExportStep) -> list[tuple[str, str]]:
    """(stage, quant) pairs: each float stage as float, the latest float stage also PTQ'd if asked, QAT as int8.

    With `precision`, the shipped stages instead: the float baseline as reference, the latest float
    stage in every asked precision, and the QAT stage as int8."""
    from edgeprune.recipe.steps.stages import float_parent  # loads TensorFlow: only when the step runs

    if spec.stages:
        if spec.precision is not None:
            raise EdgepruneError("export gives both stages and precision", "use precision (the shipped stage) or stages")
        unknown = [s for s in spec.stages if s not in ctx.metrics["stages"]]
        if unknown:
            raise EdgepruneError(f"export.stages names {unknown}, which this run has not produced",
                                 f"use stages from {sorted(ctx.metrics['stages'])}")
        return [(s, q) for s, qs in spec.stages.items() for q in qs]
    stages = ctx.metrics["stages"]
    last_float = float_parent(ctx)
    if spec.precision is not None:
        precisions = AUTO_PRECISIONS if spec.precision == "auto" else spec.precision
        targets = [("baseline", "none")] + [(last_float, q) for q in precisions if (last_float, q) != ("baseline", "none")]
        return targets + ([("qat", "int8")] if "qat" in stages and "int8" in precisions else [])
    targets = [("baseline", "none")]
    if last_float != "baseline":
        targets.append((last_float, "none"))
    if "qat" in stages:
        targets.append(("qat", "int8"))
    elif ctx.ptq is not None:
        targets.append((last_float, "int8"))
    return targets


def _sparse_problems(ctx, rows: list[dict], stage: str, fmt: str) -> list[str]:
    """Why XNNPACK's sparse 1×1 path would not run `stage` (export/sparse_1x1.py), read from its float32 file
    when this step wrote one (storage aside: the sparse file stores the kernels sparse); [] when it may
    qualify, and the written sparse file is then checked again."""
    dense = next((r for r in rows if r["stage"] == stage and r["format"] == fmt and r["quant"] == "none"), None)
    if dense is None:
        return []
    return [p for p in sparse_1x1_problems(ctx.path(dense["path"]).read_bytes()) if not p.startswith(STORED_DENSE)]


def _sparse_note(ctx, stage: str, problems: list[str]) -> str:
    note = f"no sparse file for {stage}: " + "; ".join(problems)
    ctx.log(f"      {note}")
    return note


def _precision_devices(ctx, spec: ExportStep) -> list[str]:
    """Where per-device precision is decided: export.devices, else --device, else the benchmark step's devices."""
    if spec.devices:
        return spec.devices
    if ctx.devices:
        return ctx.devices
    bench = [s for kind, s in ctx.recipe.step_specs() if kind == "benchmark"]
    return bench[0].devices if bench else ["host"]


def _mixed_files(ctx, spec: ExportStep, model, calib) -> list[dict]:
    """{keep_float, devices (None: every device), tables} per mixed file to write."""
    if spec.keep_float:
        return [{"keep_float": list(spec.keep_float), "devices": None, "tables": {}}]
    devices = []
    for device in _precision_devices(ctx, spec):
        try:
            profile = get_profile(device)
            backend_for(profile).ready(profile)
            devices.append(device)
        except DeviceError as e:
            ctx.log(f"      no mixed file for {device}: {e}")
    return plan_mixed(model, devices, calib, log=ctx.log)


def _mixed_name(stage: str, keep: list[str]) -> str:
    tag = "_".join(keep) if len(keep) <= 3 else f"{len(keep)}layers-{hashlib.sha1(','.join(keep).encode()).hexdigest()[:6]}"
    return f"{stage}-mixed-{tag}"


def _sidecars(path: Path, target, model, dataset) -> list[Path]:
    """Files an app needs beside the model: what the target wrote (the ORT operators config), and for
    TFLite the metadata and labels from the dataset (edgeprune.export.metadata)."""
    files = list(target.sidecars(path))
    if target.name == "tflite":
        written = write_tflite_metadata(path, model, dataset)
        files += [p for p in (written["metadata"], written["labels"]) if p is not None]
    return files


def _reads(spec: ExportStep) -> tuple[str, ...]:
    return tuple(spec.stages) if spec.stages else ("baseline",)


def _cache_extra(spec: ExportStep, specs, devices):
    """A mixed file is chosen for the benchmarked devices: its cached result depends on them."""
    if spec.precision is None:
        return None
    return devices or [s.devices for k, s in specs if k == "benchmark"]


STEP = StepType("export", ExportStep, ExportResult, run, reads=_reads, writes=lambda spec: (EXPORTS,),
                device_keys=("devices",), layer_keys=("keep_float",), cache_extra=_cache_extra)
