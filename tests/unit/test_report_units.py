"""Hard edges of the report pieces, without a run: Pareto fronts, recommendations, schema, rows."""
from __future__ import annotations

import json

import pydantic
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.report import write_reports
from edgeprune.report.build import build_report, recommendations, summary_rows
from edgeprune.report.markdown import md_table, render_markdown
from edgeprune.report.pareto import pareto_front
from edgeprune.report.schema import report_json_schema, validate_report
from edgeprune.report.sections import Table


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.80), (2.0, 0.90), (2.0, 0.85), (3.0, 0.90), (0.5, 0.70), (4.0, 0.95)]
    assert pareto_front(pts) == [4, 0, 1, 5]
    assert pareto_front([(1.0, 0.9), (1.0, 0.9)]) == [0, 1]  # ties dominate nobody
    assert pareto_front([]) == []


def _row(stage, fmt, device, acc, p50, size):
    return {"stage": stage, "format": fmt, "quant": "none", "device": device, "test_accuracy": acc,
            "latency_ms": {"p50": p50}, "file_bytes": size}


def test_recommendation_is_fastest_within_one_point_of_best():
    rows = [_row("baseline", "tflite", "host", 0.910, 2.0, 1000), _row("finetuned", "tflite", "host", 0.902, 1.0, 400),
            _row("qat", "tflite", "host", 0.880, 0.4, 120), _row("qat", "tflite", "pi", 0.880, 9.0, 120)]
    recs = {(r["device"], r["goal"]): r["row"] for r in recommendations(rows)}
    assert recs[("host", "recommended")] == 1
    assert recs[("host", "most_accurate")] == 0
    assert recs[("host", "fastest")] == 2 and recs[("host", "smallest")] == 2
    assert recs[("pi", "recommended")] == 3


def _metrics(**extra):
    stage = {"model_path": "models/baseline.keras", "file_bytes": 10, "params": 5, "macs": 7, "val_accuracy": 0.5,
             "test_accuracy": 0.6, "layers": []}
    return {"schema_version": 1, "run": {"name": "r"}, "dataset": {"name": "digits", "test": 100},
            "stages": {"baseline": stage}, "steps": [], "exports": [], "benchmarks": [], **extra}


def test_without_exports_the_keras_stages_are_the_rows(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    report = build_report(tmp_path)
    [row] = report["rows"]
    assert (row["format"], row["device"], row["test_accuracy"]) == ("keras", None, 0.6)
    assert any("recipe.lock.yaml" in n for n in report["notes"])
    assert any("no benchmark" in n for n in report["notes"])
    lines = render_markdown(report).splitlines()
    assert lines[lines.index(next(l for l in lines if l.startswith("| stage"))) + 2].startswith(
        "| baseline | keras | — | 10 | 5 | 7 | 0.6000 | — | — |")


def test_exported_but_unbenchmarked_file_keeps_a_row_without_latency():
    m = _metrics(exports=[{"stage": "baseline", "format": "onnx", "quant": "none", "path": "exports/b.onnx",
                           "file_bytes": 9, "accuracy": 0.61, "top1_agreement": 1.0, "max_abs_diff": 1e-7,
                           "within_tolerance": True, "samples": 100}])
    [row] = summary_rows(m)
    assert row["device"] is None and row.get("latency_ms") is None
    assert row["test_accuracy"] == 0.61 and row["parity"]["within_tolerance"] is True


def test_schema_refuses_unknown_keys_and_wrong_types(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    report = build_report(tmp_path)
    validate_report(report)
    with pytest.raises(pydantic.ValidationError):
        validate_report({**report, "surprise": 1})
    with pytest.raises(pydantic.ValidationError):
        validate_report({**report, "rows": [{**report["rows"][0], "file_bytes": "large"}]})
    with pytest.raises(pydantic.ValidationError):
        validate_report({**report, "schema_version": 2})
    assert "rows" in report_json_schema()["properties"]


def test_missing_metrics_is_one_line_error_naming_path_and_fix(tmp_path):
    with pytest.raises(EdgepruneError) as e:
        build_report(tmp_path / "run")
    assert str(tmp_path / "run") in str(e.value) and "edgeprune run" in e.value.fix
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    with pytest.raises(EdgepruneError):
        write_reports(tmp_path, formats=("pdf",))


def test_markdown_cells_escape_pipes():
    text = md_table(Table(["a", "b"], [["x|y", "1"]], {1}))
    assert text.splitlines()[2] == "| x\\|y | 1 |"


def test_emulated_device_ranks_speed_by_instruction_count():
    rows = [_row("a", "tflite", "qemu-aarch64", 0.90, 5.0, 100), _row("b", "tflite", "qemu-aarch64", 0.90, 9.0, 100)]
    for r, instr in zip(rows, (2_000_000, 1_000_000)):
        r.update(emulated=True, instructions_per_inference=instr)
    recs = {r["goal"]: r for r in recommendations(rows)}
    assert recs["fastest"]["row"] == 1 and "instructions" in recs["fastest"]["why"]


def test_every_report_and_row_field_is_documented():
    from pathlib import Path

    from edgeprune.report.schema import Report, Row

    doc = (Path(__file__).resolve().parents[2] / "docs" / "report-schema.md").read_text()
    for name in [*Report.model_fields, *Row.model_fields]:
        assert f"`{name}" in doc, f"{name} is not in docs/report-schema.md"


def test_pruning_section_says_how_channels_were_chosen():
    from edgeprune.report.sections import pruning

    base = {"before_stage": "baseline", "after_stage": "pruned", "criterion": "l1", "removed_channels": 40,
            "params_before": 100, "params_after": 50, "macs_before": 1000, "macs_after": 400, "layers": []}
    by_ratio = pruning({"pruning": {**base, "ratio": 0.5, "schedule": "oneshot", "settings": {"ratio": 0.5}}})
    assert by_ratio.text.startswith("Criterion l1, ratio 0.5, schedule oneshot; 40 channels removed.")
    by_cost = pruning({"pruning": {**base, "ratio": None, "settings": {
        "allocation": "device_cost", "device": "qemu-aarch64", "precision": "int8", "budget": {"reduction": 4.0}}}})
    assert by_cost.text.startswith("Channels per group chosen by measured cost on qemu-aarch64 (int8, budget "
                                   "{'reduction': 4.0}), criterion l1 for which channels go; 40 channels removed.")
    assert "ratio" not in by_cost.text.split(";")[0].replace("reduction", "")
