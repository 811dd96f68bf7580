"""`precision: auto` in a recipe: every precision of the shipped stage is exported and measured,
one file per device is kept, and the report recommends and stars that same file."""
import json
from pathlib import Path

import pytest

from edgeprune.recipe import run_recipe

RECIPE = Path(__file__).resolve().parents[1] / "data" / "precision_recipe.yaml"


@pytest.mark.slow
def test_precision_auto_keeps_one_file_per_device_and_the_report_agrees(tmp_path):
    run = run_recipe(RECIPE, out_dir=tmp_path / "run", log=lambda *a: None)
    m = json.loads((run / "metrics.json").read_text())
    exports = {(e["stage"], e["quant"]): e for e in m["exports"]}
    assert set(exports) == {("baseline", "none"), ("pruned", "none"), ("pruned", "fp16"), ("pruned", "int8"),
                            ("pruned", "mixed")}
    mixed = exports[("pruned", "mixed")]
    assert mixed["keep_float"] == ["conv1"] and mixed["devices"] is None and mixed["path"].endswith("pruned-mixed-conv1.tflite")
    assert exports[("pruned", "fp16")]["within_tolerance"] is True
    assert m["precision"] == {"mode": "auto", "stages": ["pruned"], "max_accuracy_drop": 1.0}

    shipped = [b for b in m["benchmarks"] if b.get("shipped")]
    assert [b["device"] for b in shipped] == ["host"] and shipped[0]["stage"] == "pruned"
    best = max(e["accuracy"] for (stage, _), e in exports.items() if stage == "pruned")
    assert exports[(shipped[0]["stage"], shipped[0]["quant"])]["accuracy"] >= best - 0.01

    report = json.loads((run / "report.json").read_text())
    [rec] = [r for r in report["recommendations"] if r["goal"] == "recommended"]
    row = report["rows"][rec["row"]]
    assert row["artifact"] == shipped[0]["export"] and row["pareto_latency"] is True
    assert "precision: auto" in rec["why"]
