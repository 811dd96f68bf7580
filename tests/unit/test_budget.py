"""The one Budget (edgeprune.budget) and the one set of prune options (edgeprune.prune_options): parsing,
errors, conversion to a device's metric, the pydantic field.  No training, no subprocess."""
import pytest
from pydantic import BaseModel, ValidationError

from edgeprune.budget import KEYS, Budget, BudgetError, resolve
from edgeprune.errors import EdgepruneError
from edgeprune.prune_options import PruneOptions, device_cost_first_layer


def test_every_form_parses_to_the_same_budget():
    want = {"latency_ms": 0.4, "size_kb": 28.0}
    assert Budget.parse("latency_ms=0.4,size_kb=28") == want
    assert Budget.parse(["latency_ms=0.4", " size_kb = 28 "]) == want  # the CLI's repeated --budget
    assert Budget.parse({"latency_ms": 0.4, "size_kb": 28}) == want
    assert Budget.parse(Budget(want)) == want and isinstance(Budget.parse(want), dict)
    assert set(KEYS) == {"latency_ms", "size_kb", "macs", "instructions", "reduction"}


@pytest.mark.parametrize("bad, message", [
    ("latency=2", "bad budget 'latency=2': unknown key 'latency'"),
    ("macs=-1", "macs must be a positive limit"),
    ("macs=0", "macs must be a positive limit"),
    ("macs=nan", "macs must be a positive limit"),
    ("size_kb", "not KEY=VALUE"),
    ("macs=abc", "macs needs a number"),
    (["macs=1", "macs=2"], "macs is limited twice"),
    ([], "the budget is empty"),
    ({}, "the budget is empty"),
    ({"latency": 1.0}, "unknown key 'latency'"),
    ({"size_kb": True}, "size_kb needs a number"),
    ({"size_kb": -3}, "size_kb must be a positive limit"),
    (3.0, "a budget is KEY=VALUE text or a mapping"),
])
def test_bad_budgets_are_one_line_with_a_fix(bad, message):
    with pytest.raises(BudgetError, match="bad budget|empty") as err:
        Budget.parse(bad)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, EdgepruneError) and err.value.fix


def test_a_consumer_refuses_what_it_cannot_measure():
    budget = Budget.parse("reduction=4")
    with pytest.raises(BudgetError, match="the search step cannot limit reduction: it measures latency_ms, size_kb"):
        budget.require(("latency_ms", "size_kb", "macs", "instructions"), "the search step")
    assert Budget.parse("size_kb=2").require(("size_kb",), "x") == {"size_kb": 2.0}


def test_all_limits_must_be_met():
    budget = Budget.parse("latency_ms=1,size_kb=10")
    assert budget.met_by({"latency_ms": 1.0, "size_kb": 9.0})
    assert not budget.met_by({"latency_ms": 0.5, "size_kb": 11.0})
    assert not budget.met_by({"latency_ms": 0.5})  # a limit not measured is not met
    assert budget.describe() == "latency_ms ≤ 1, size_kb ≤ 10"
    assert Budget.parse("reduction=6").describe() == "reduction ≥ 6×"


def test_latency_is_the_devices_time():
    assert Budget.parse("latency_ms=0.3,size_kb=20").device_limits("board_ms") == {"board_ms": 0.3, "size_kb": 20.0}
    assert Budget.parse("latency_ms=0.3").device_limits("latency_ms") == {"latency_ms": 0.3}
    limits = Budget.parse("reduction=4,size_kb=20").device_limits("instructions")
    assert limits == {"instructions": ("reduction", 4.0), "size_kb": 20.0}
    assert resolve(limits, {"instructions": 1000.0, "size_kb": 50.0}) == {"instructions": 250.0, "size_kb": 20.0}


def test_a_limit_in_another_metric_than_the_devices_is_refused():
    with pytest.raises(BudgetError, match=r"costed by the estimated board time \(ms\), not instructions"):
        Budget.parse("instructions=100").device_limits("board_ms")
    with pytest.raises(BudgetError, match=r"costed by p50 latency \(ms\), not instructions"):
        Budget.parse("instructions=100").device_limits("latency_ms")
    with pytest.raises(BudgetError, match="costed by instructions, not latency_ms"):
        Budget.parse("latency_ms=1").device_limits("instructions")
    with pytest.raises(BudgetError, match="limits board_ms twice"):
        Budget.parse("latency_ms=1,reduction=2").device_limits("board_ms")


def test_budget_is_a_pydantic_field():
    class Step(BaseModel):
        budget: Budget

    assert Step.model_validate({"budget": {"macs": 1e6}}).budget == {"macs": 1e6}
    assert Step.model_validate({"budget": "macs=1e6"}).model_dump() == {"budget": {"macs": 1e6}}
    with pytest.raises(ValidationError, match="unknown key 'latency'"):
        Step.model_validate({"budget": {"latency": 1}})


def test_prune_options_defaults_match_the_recipe_and_recalibrate_bn():
    o = PruneOptions()
    assert (o.ratio, o.criterion, o.round_to, o.min_channels, o.recalibrate_bn, o.allocation) == (0.5, "l1", 1, 1, True, "ratio")
    assert PruneOptions.model_validate({"global": True}).global_pruning


@pytest.mark.parametrize("settings, message", [
    ({"allocation": "device_cost", "device": "host"}, "needs device and budget"),
    ({"allocation": "device_cost", "device": "host", "budget": {"reduction": 2}, "overrides": {"c": 0.2}},
     "drop global and overrides"),
    ({"allocation": "device_cost", "device": "host", "budget": {"reduction": 2}, "precision": "mixed"},
     "keep_float go together"),
    ({"budget": {"reduction": 2}}, "belong to allocation: device_cost"),
    ({"allocation": "device_cost", "device": "host", "budget": {"reduction": -2}}, "reduction must be a positive limit"),
])
def test_prune_options_refuse_incomplete_device_cost_settings(settings, message):
    with pytest.raises(ValidationError, match=message):
        PruneOptions.model_validate(settings)
    with pytest.raises(EdgepruneError, match=message):
        PruneOptions.checked(**settings)


def test_device_cost_decides_the_first_layer_in_one_place():
    assert device_cost_first_layer(None) is False and device_cost_first_layer(True) is True
    dc = PruneOptions(allocation="device_cost", device="host", budget={"reduction": 2})
    assert dc.first_layer() is False and PruneOptions().first_layer() is None
    assert isinstance(dc.budget, Budget)
