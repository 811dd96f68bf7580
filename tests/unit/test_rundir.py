"""The typed run directory: step results by kind, metrics.json validated on write and on read."""
import json

import pydantic
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.recipe.context import RunContext
from edgeprune.report.build import build_report
from edgeprune.recipe.steps import step_result
from edgeprune.recipe.steps.prune import PruneResult
from edgeprune.recipe.steps.quantize import QuantizeResult
from edgeprune.rundir import metrics_text, read_metrics

STAGE = {"model_path": "models/pruned.keras", "file_bytes": 10, "params": 5, "macs": 7, "val_accuracy": 0.5,
         "test_accuracy": 0.6, "layers": []}


def _ctx(tmp_path):
    ctx = RunContext(recipe=None, run_dir=tmp_path, dataset=None, model_source="lenet5")
    ctx.metrics = {"schema_version": 1, "run": {"name": "r"}, "stages": {}, "steps": []}
    return ctx


def test_results_are_told_apart_by_kind_and_merge_themselves(tmp_path):
    prune = step_result({"kind": "prune", "stage": "pruned", "stage_metrics": STAGE, "bn_recalibrated_layers": 2,
                         "pruning": {"plan_path": "plan.json", "ratio": 0.5, "removed_channels": 9},
                         "sensitivity_path": "sensitivity.json", "weights_path": "weights.json"})
    quant = step_result({"kind": "quantize", "mode": "ptq", "ptq": {"int8_io": False, "calibration_samples": 200}})
    assert isinstance(prune, PruneResult) and isinstance(quant, QuantizeResult)
    ctx = _ctx(tmp_path)
    prune.merge(ctx)
    quant.merge(ctx)
    assert ctx.current_stage == "pruned" and ctx.ptq == {"int8_io": False, "calibration_samples": 200}
    assert ctx.metrics["pruning"] == {"plan_path": "plan.json", "ratio": 0.5, "removed_channels": 9, "steps": [], "kept": [],
                                      "sensitivity_path": "sensitivity.json"}
    assert prune.record() == {"bn_recalibrated_layers": 2}
    assert prune.artifacts() == ["models/pruned.keras", "weights.json"]
    ctx.write_metrics()
    assert read_metrics(tmp_path / "metrics.json")["stages"]["pruned"] == STAGE


def test_undeclared_keys_are_refused():
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        step_result({"kind": "report", "report_files": [], "surprise": 1})
    with pytest.raises(pydantic.ValidationError):
        step_result({"kind": "no_such_step"})
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        metrics_text({"run": {"name": "r"}, "surprise": 1})


def test_report_names_the_bad_key_of_a_drifted_metrics_json(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"schema_version": 1, "run": {"name": "r"},
                                                       "stages": {"baseline": {**STAGE, "file_bytes": "big"}}}))
    with pytest.raises(EdgepruneError, match="stages.baseline.file_bytes"):
        build_report(tmp_path)


def test_a_setting_a_newer_version_adds_is_not_a_different_recipe():
    from edgeprune.recipe.lock import same_recipe

    old = {"name": "r", "dataset": {"name": "mnist"}, "steps": [{"prune": {"ratio": 0.5}}, {"export": {"formats": ["tflite"]}}]}
    new = {"name": "r", "dataset": {"name": "mnist", "scaling": None},
           "steps": [{"prune": {"ratio": 0.5, "protect_first": None}}, {"export": {"formats": ["tflite"]}}]}
    assert same_recipe(old, new)
    assert not same_recipe(old, {**new, "steps": [{"prune": {"ratio": 0.6}}, {"export": {"formats": ["tflite"]}}]})
    assert not same_recipe(old, {**new, "steps": [{"search": {"ratio": 0.5}}, {"export": {"formats": ["tflite"]}}]})
    assert not same_recipe(old, {**new, "steps": new["steps"][:1]})
    assert not same_recipe(old, {**new, "dataset": {"name": "fashion_mnist"}})
