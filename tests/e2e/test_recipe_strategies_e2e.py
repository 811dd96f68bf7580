"""Recipes that chain the pruning strategies: sparsity training, gradual Taylor pruning with
sensitivity allocation, distillation fine-tuning; and a budget-search step."""
import json
from pathlib import Path

import pytest

from edgeprune.recipe import run_recipe

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.slow
def test_sparsity_gradual_taylor_distill_chain(tmp_path):
    out = tmp_path / "run"
    run_recipe(DATA / "strategies_recipe.yaml", out_dir=out, log=lambda *a: None)
    m = json.loads((out / "metrics.json").read_text())
    assert {"baseline", "sparse", "pruned", "finetuned"} <= set(m["stages"])
    steps = m["pruning"]["steps"]
    assert m["pruning"]["criterion"] == "taylor" and m["pruning"]["schedule"] == "linear"
    assert [s["step"] for s in steps] == [1, 2]
    assert steps[0]["ratio"] < steps[1]["ratio"]
    assert all(0.0 < s["val_accuracy"] <= 1.0 and 0.0 < s["val_accuracy_before_ft"] <= 1.0 for s in steps)
    assert (out / "plans" / "step-1.json").exists() and (out / "plans" / "step-2.json").exists()
    sens = json.loads((out / "sensitivity.json").read_text())
    assert sens  # the curves the report plots
    assert m["stages"]["pruned"]["macs"] < m["stages"]["baseline"]["macs"]
    assert next(s for s in m["steps"] if s["name"] == "prune")["bn_recalibrated_layers"] > 0
    assert json.loads((out / "report.json").read_text())["sensitivity"]


@pytest.mark.slow
def test_search_step_meets_mac_budget(tmp_path):
    recipe = tmp_path / "search.yaml"
    recipe.write_text(
        "name: search\nmodel: lenet5\ndataset: {name: fashion_mnist, max_train_samples: 1500, test_samples: 300}\n"
        "steps:\n  - train: {epochs: 1}\n"
        "  - search: {budget: {macs: 1500000}, ratios: [0.3, 0.6], finetune_epochs: 0, sensitivity: false,"
        " max_drop: 100}\n"
        "  - finetune: {epochs: 1, distill: {}}\n")
    out = tmp_path / "run"
    run_recipe(recipe, out_dir=out, log=lambda *a: None)
    m = json.loads((out / "metrics.json").read_text())
    search = m["search"]
    assert search["best_measured"]["macs"] <= 1_500_000 < m["stages"]["baseline"]["macs"]
    assert m["stages"]["pruned"]["macs"] == search["best_measured"]["macs"]
    trials = json.loads((out / "search" / "summary.json").read_text())["trials"]
    assert len(trials) >= 3 and (out / "plan.json").exists()
