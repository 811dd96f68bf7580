"""Recipes that chain the pruning strategies: sparsity training, gradual Taylor pruning with
sensitivity allocation, distillation fine-tuning; and a budget-search step."""

import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe.schema import load_recipe


def test_search_step_budget_takes_only_what_a_trial_measures(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: x\nmodel: lenet5\nsteps:\n  - search: {budget: {macs: 1, reduction: 2}}\n")
    with pytest.raises(RecipeError, match=r"bad.yaml:4: .*the search step cannot limit reduction"):
        load_recipe(recipe).step_specs()
    recipe.write_text("name: x\nmodel: lenet5\nsteps:\n  - search: {budget: {macs: 1.0e6, size_kb: 2}}\n")
    (_, spec), = load_recipe(recipe).step_specs()
    assert spec.budget == {"macs": 1.0e6, "size_kb": 2.0}  # several limits, all to be met
