"""`precision: auto` in a recipe: every precision of the shipped stage is exported and measured,
one file per device is kept, and the report recommends and stars that same file."""

import pytest

from edgeprune.recipe.steps.export import ExportStep


def test_export_step_precision_settings_validate():
    assert ExportStep(precision="auto").max_accuracy_drop == 0.5
    assert ExportStep(precision=["none", "mixed"], keep_float=["conv1"]).precision == ["none", "mixed"]
    for bad in ({"precision": "best"}, {"precision": ["int4"]}, {"keep_float": []}, {"max_accuracy_drop": -1}):
        with pytest.raises(ValueError):
            ExportStep(**bad)
