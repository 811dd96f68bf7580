"""Per-op device cost: isolated ops that load, parts that add up to the whole, a cache that is used,
candidate models that match a real export, and an allocation that follows (non-monotonic) cost."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras, layers
from edgeprune.devicecost import allocate as allocate_mod
from edgeprune.profiling.api import export_bytes
from edgeprune.profiling.cost_table import EMPTY_KEY, CostTable
from edgeprune.profiling.tflite_ops import NUMPY_TYPES, isolate, op_units, read_model
from helpers.profiling_models import small_cnn


@pytest.fixture(autouse=True)
def cost_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_COST_DIR", str(tmp_path / "cost"))


CAL = np.random.default_rng(0).random((16, 24, 24, 1)).astype("float32")


def test_every_isolated_op_loads_and_keeps_its_shapes():
    from ai_edge_litert.interpreter import Interpreter

    m = small_cnn()
    for precision in ("float32", "int8", "float16"):
        model = read_model(export_bytes(m, precision, CAL))
        units = op_units(model)
        assert [u.op for u in units if u.op == "CONV_2D"] == ["CONV_2D", "CONV_2D"]  # BN and ReLU fused into conv2
        if precision == "float16":  # the float16 weights' DEQUANTIZE travels with its conv
            assert all(len(u.ops) >= 2 for u in units if u.op in ("CONV_2D", "FULLY_CONNECTED"))
        for u in units:
            it = Interpreter(model_content=isolate(model, u))
            it.allocate_tensors()
            want = [list(model.subgraphs[0].tensors[t].shape) for t in u.inputs]
            assert [list(d["shape"]) for d in it.get_input_details()] == want


def test_cost_table_is_per_device_and_runtime(tmp_path):
    from edgeprune.harness.profiles import get_profile

    a, b = CostTable(get_profile("qemu-aarch64")), CostTable(get_profile("qemu-aarch64-a76"))
    assert a.path != b.path and a.key["cpu"] == "cortex-a72" and "ai-edge-litert" in a.key["runtime"]
    a.add({"x": {"cost": 5.0}})
    assert CostTable(get_profile("qemu-aarch64")).get("x") == 5.0 and "x" not in CostTable(get_profile("qemu-aarch64-a76"))


# ---------------------------------------------------------------------------------------------
# allocation on a fake cost table


def fake_costs(conv_cost: dict[int, float]):
    """measure_missing stand-in: CONV_2D costs conv_cost[out channels]; every other op 10; overhead 0."""
    def measure(table, items, **_):
        values = {EMPTY_KEY: {"cost": 0.0}}
        for key, data in items.items():
            model = read_model(data)
            (u,) = op_units(model)
            out = model.subgraphs[0].tensors[u.outputs[0]]
            values[key] = {"cost": conv_cost[int(out.shape[-1])] if u.op == "CONV_2D" else 10.0}
        table.add(values)
        return len(values)
    return measure


def one_conv(filters=16, size=8):
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((size, size, 1), name="input")
    x = layers.Conv2D(filters, 3, name="conv1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inp, x, name="one_conv")


def test_allocation_picks_the_cheaper_channel_count_when_cost_is_not_monotonic(monkeypatch):
    # 8 channels cost less than 4 (as a first conv 1→8 does on the A72 in float)
    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 300.0, 8: 100.0, 12: 350.0, 16: 400.0}))
    a = allocate_mod.allocate(one_conv(), "qemu-aarch64", {"latency_ms": 200}, precision="float32")
    assert a.counts == {"conv1": 8} and a.met
    assert a.predicted_cost == 100.0 + 10.0 * 3  # conv + reshape + fc + softmax (overhead 0)
    assert a.plan.settings["allocation"] == "device_cost" and not a.plan.settings["protect_first"]
    assert len(a.plan.removed["conv1"]) == 8


def test_allocation_says_when_the_budget_cannot_be_met(monkeypatch):
    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 300.0, 8: 100.0, 12: 350.0, 16: 400.0}))
    a = allocate_mod.allocate(one_conv(), "qemu-aarch64", {"reduction": 100.0}, precision="float32", best_effort=True)
    assert not a.met and a.counts == {"conv1": 8}  # the cheapest reachable point, not the fewest channels
    # by default an unreachable budget is an error naming the floor and what holds it
    with pytest.raises(allocate_mod.BudgetNotMet) as err:
        allocate_mod.allocate(one_conv(), "qemu-aarch64", {"reduction": 100.0}, precision="float32")
    assert str(err.value).startswith("the budget cannot be met on qemu-aarch64: the cheapest channel counts reach "
                                     "board_ms 130 > 4.3; the floor is held by conv1 (16→8, float32) 77%")
    assert "best_effort: true" in err.value.fix


def three_convs():
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((10, 10, 1), name="input")
    x = layers.Conv2D(16, 3, padding="same", name="conv1")(x)
    x = layers.Conv2D(24, 3, padding="same", name="conv2")(x)
    x = layers.Conv2D(32, 3, padding="same", name="conv3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inp, x, name="three")


def test_a_looser_budget_never_loses_more(monkeypatch):
    """The greedy walks one path of steps for every budget on the same metrics and stops on it when the
    budget is met: a looser budget loses no more importance (an uneven cost per channel count, as on a
    real board, made the old greedy lose more at 2.55x than at 2.7x)."""
    rng = np.random.default_rng(1)
    monkeypatch.setattr(allocate_mod, "measure_missing",
                        fake_costs({k: float(k * 10 + rng.integers(0, 60)) for k in range(4, 33, 4)}))
    model = three_convs()
    template = export_bytes(model, "float32", None)
    lost = []
    for reduction in (2.0, 2.4, 2.55, 2.7, 2.9):
        a = allocate_mod.allocate(model, "qemu-aarch64", {"reduction": reduction}, precision="float32",
                                  template=template, best_effort=True)
        assert a.met
        lost.append(sum(s["importance_lost"] for s in a.steps))
    assert lost == sorted(lost) and lost[0] < lost[-1], lost


def test_protect_first_stays_the_users_choice(monkeypatch):
    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 300.0, 8: 100.0, 12: 350.0, 16: 400.0}))
    a = allocate_mod.allocate(one_conv(), "qemu-aarch64", {"latency_ms": 200}, precision="float32", protect_first=True,
                              best_effort=True)
    assert a.counts == {} and not a.met


def test_budget_in_the_wrong_metric_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 3.0, 8: 1.0, 12: 3.5, 16: 4.0}))
    with pytest.raises(EdgepruneError, match=r"costed by the estimated board time \(ms\), not instructions"):
        allocate_mod.allocate(one_conv(), "qemu-aarch64", {"instructions": 1.0}, precision="float32")
    with pytest.raises(EdgepruneError, match=r"costed by p50 latency \(ms\), not instructions"):
        allocate_mod.allocate(one_conv(), "host", {"instructions": 1.0}, precision="float32")


def test_candidate_counts_are_multiples_of_4_and_the_full_count():
    assert allocate_mod.candidate_counts(20, 1) == [4, 8, 12, 16, 20]
    assert allocate_mod.candidate_counts(50, 9) == [12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 50]
    assert allocate_mod.candidate_counts(3, 1) == [3]


# ---------------------------------------------------------------------------------------------
# the emulated board


def test_several_limits_are_all_met(monkeypatch):
    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 300.0, 8: 100.0, 12: 350.0, 16: 400.0}))
    a = allocate_mod.allocate(one_conv(), "qemu-aarch64", {"latency_ms": 1000, "size_kb": 8.0}, precision="float32")
    # the size limit binds: 4 channels, though 8 would take less board time
    assert a.met and a.predicted["size_kb"] <= 8.0 and a.counts == {"conv1": 4}
    assert a.predicted["board_ms"] == 300.0 + 30.0
    assert set(a.limits) == {"board_ms", "size_kb"}


def two_convs(size=8):
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((size, size, 1), name="input")
    x = layers.Conv2D(16, 3, name="conv1")(x)
    x = layers.Conv2D(16, 3, name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inp, x, name="two_convs")


def test_weigh_accuracy_cuts_where_validation_accuracy_suffers_least(monkeypatch):
    """Scores see conv1 and conv2 alike; the measured accuracy says conv1 is fragile, so only conv2 goes,
    and a noisy curve (12 channels better than 16) never makes a step look like a gain.  (The untrained
    convs share one all-zero bias in the .tflite: cutting conv2 must leave conv1's alone.)"""
    from edgeprune.strategies import sensitivity

    monkeypatch.setattr(allocate_mod, "measure_missing", fake_costs({4: 100.0, 8: 200.0, 12: 300.0, 16: 400.0}))
    asked = {}

    def fake_count_sensitivity(model, dataset, counts, **_):
        asked.update(counts)
        return 0.9, {"conv1": {4: 0.2, 8: 0.5, 12: 0.8}, "conv2": {4: 0.85, 8: 0.88, 12: 0.95}}

    monkeypatch.setattr(sensitivity, "count_sensitivity", fake_count_sensitivity)
    a = allocate_mod.allocate(two_convs(), "qemu-aarch64", {"latency_ms": 650}, precision="float32",
                              weigh="accuracy", dataset=object())
    assert asked == {"conv1": [4, 8, 12, 16], "conv2": [4, 8, 12, 16]}
    assert a.met and a.counts == {"conv1": 16, "conv2": 8}
    # 16 → 12 loses nothing (its 0.95 above the baseline counts as 0), 12 → 8 loses 0.9 - 0.88
    assert [s["importance_lost"] for s in a.steps] == [0.0, pytest.approx(0.02)]
    assert a.plan.settings["weigh"] == "accuracy"
    by_score = allocate_mod.allocate(two_convs(), "qemu-aarch64", {"latency_ms": 650}, precision="float32")
    assert by_score.plan.settings["weigh"] == "score"
    with pytest.raises(EdgepruneError, match="validation split"):
        allocate_mod.allocate(two_convs(), "qemu-aarch64", {"latency_ms": 650}, precision="float32", weigh="accuracy")


def test_report_shows_where_the_time_goes(tmp_path):
    """The report reads profile.json (written by the prune step) into a per-layer table, before and after."""
    from edgeprune.report.device_cost import device_cost_section
    from edgeprune.report.sections import device_cost

    def prof(conv, fc):
        return {"cpu": "cortex-a72", "metric": "instructions", "whole": 10 + conv + fc, "overhead": 10,
                "parts_over_whole": 1.0, "ops": [{"layer": "conv1", "op": "CONV_2D", "cost": conv},
                                                 {"layer": "fc", "op": "FULLY_CONNECTED", "cost": fc}]}
    (tmp_path / "profile.json").write_text(json.dumps({
        "device": "qemu-aarch64", "precision": "float32", "before": prof(900, 90), "after": prof(150, 40),
        "allocation": {"budget": 250, "predicted": {"instructions": 201}, "counts": {"conv1": 8}, "full": {"conv1": 20}}}))
    notes = []
    dc = device_cost_section(tmp_path, notes)
    assert not notes and dc["predicted"] == 201 and [l["layer"] for l in dc["layers"]] == ["conv1", "fc"]
    s = device_cost({"device_cost": dc})
    assert s.tables[0].rows[0] == ["conv1", "CONV_2D", "900", "90.0%", "150"]
    assert any("measured 200 (met)" in b for b in s.bullets) and any("conv1 8/20" in b for b in s.bullets)


@pytest.mark.parametrize("settings, message", [
    ({"allocation": "device_cost", "device": "host"}, "needs device and budget"),
    ({"allocation": "device_cost", "device": "host", "budget": {"latency_ms": 0.1}, "schedule": "linear"},
     "drop schedule"),
    ({"allocation": "device_cost", "device": "host", "budget": {"reduction": 2}, "precision": "mixed"},
     "keep_float go together"),
    ({"budget": {"reduction": 2}}, "belong to allocation: device_cost"),
    ({"best_effort": True}, "best_effort and compare_devices belong to allocation: device_cost"),
    ({"compare_devices": ["qemu-aarch64"]}, "compare_devices belong to allocation: device_cost"),
])
def test_recipe_refuses_incomplete_device_cost_settings(settings, message):
    from pydantic import ValidationError

    from edgeprune.recipe.steps.prune import PruneStep

    with pytest.raises(ValidationError, match=message):
        PruneStep.model_validate(settings)
    ok = PruneStep.model_validate({"allocation": "device_cost", "device": "qemu-aarch64", "precision": "mixed",
                                   "keep_float": ["conv1"], "budget": {"instructions": 3e5, "size_kb": 28}})
    assert ok.budget == {"instructions": 3e5, "size_kb": 28} and ok.best_effort is False
    assert PruneStep.model_validate({"allocation": "device_cost", "device": "qemu-aarch64", "best_effort": True,
                                     "budget": {"latency_ms": 0.1}}).best_effort


def precision_costs():
    """measure_missing stand-in that knows precision: an int8 conv costs in·out + 50 (1000 with at most 4
    input channels), a float conv 2·in·out, so a first conv is cheaper in float and a 16-channel one in
    int8 (as the A72 measures them); QUANTIZE, DEQUANTIZE and every other op cost 10, the overhead 0."""
    def measure(table, items, **_):
        values = {EMPTY_KEY: {"cost": 0.0}}
        for key, data in items.items():
            model = read_model(data)
            (u,) = op_units(model)
            sg = model.subgraphs[0]
            if u.op == "CONV_2D":
                x, y = sg.tensors[u.inputs[0]], sg.tensors[u.outputs[0]]
                n_in, n_out = int(x.shape[-1]), int(y.shape[-1])
                values[key] = {"cost": float(n_in * n_out + (1000 if n_in <= 4 else 50) if NUMPY_TYPES[x.type] is np.int8
                                           else 2 * n_in * n_out)}
            else:
                values[key] = {"cost": 10.0}
        table.add(values)
        return len(values)
    return measure


def test_auto_precision_keeps_a_layer_float_when_that_is_cheaper_and_loses_nothing(monkeypatch):
    """precision auto: the search may keep a layer float in the int8 file, costed on that mixed file (its
    QUANTIZE at the edge included).  Here keeping conv1 float meets the budget with no channel cut, where
    the int8 file must lose channels: the joint search ships the mixed file and loses less."""
    monkeypatch.setattr(allocate_mod, "measure_missing", precision_costs())
    model = two_convs()
    int8 = allocate_mod.allocate(model, "qemu-aarch64", {"reduction": 1.06}, precision="int8", calibration=CAL[:, :8, :8])
    joint = allocate_mod.allocate(model, "qemu-aarch64", {"reduction": 1.06}, precision="auto", calibration=CAL[:, :8, :8])
    assert int8.met and int8.keep_float == [] and sum(s["importance_lost"] for s in int8.steps) > 0
    assert joint.met and joint.precision == "mixed" and joint.keep_float == ["conv1"]
    assert joint.counts == {"conv1": 16, "conv2": 16} and joint.steps[0] == {
        "layer": "conv1", "precision": "float32", "importance_lost": 0.0, "cost": joint.predicted}
    assert joint.predicted["board_ms"] < joint.baseline["board_ms"] / 1.06
    assert joint.plan.settings["keep_float"] == ["conv1"] and joint.plan.settings["searched_precision"]
    # a size limit still exceeded does not bar the step: the float layer's bigger file counts against its saving
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((8, 8, 3), name="input")
    x = layers.Conv2D(16, 5, name="conv1")(x)  # 1,200 weights: its float file is the bigger one
    x = layers.Conv2D(16, 3, name="conv2")(x)
    x = layers.Dense(10, activation="softmax", name="fc")(layers.Flatten(name="flatten")(x))
    rgb = keras.Model(inp, x)
    sized = allocate_mod.allocate(rgb, "qemu-aarch64", {"reduction": 1.02, "size_kb": 1.0}, precision="auto",
                                  calibration=np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32"),
                                  best_effort=True)
    assert sized.steps[0].get("layer") == "conv1" and sized.keep_float == ["conv1"], sized.steps
    with pytest.raises(EdgepruneError, match="precision auto chooses"):
        allocate_mod.allocate(model, "qemu-aarch64", {"reduction": 2.0}, precision="auto", keep_float=["conv2"])


def device_costs(seed: int):
    """measure_missing stand-in whose conv costs differ per device (a random table per device name and seed)."""
    def measure(table, items, **_):
        values = {EMPTY_KEY: {"cost": 0.0}}
        for key, data in items.items():
            model = read_model(data)
            (u,) = op_units(model)
            sg = model.subgraphs[0]
            if u.op == "CONV_2D":
                n_in, n_out = int(sg.tensors[u.inputs[0]].shape[-1]), int(sg.tensors[u.outputs[0]].shape[-1])
                rng = np.random.default_rng([seed, len(table.profile.name), n_in, n_out])
                values[key] = {"cost": float(n_in * n_out * rng.uniform(0.5, 1.5) + rng.integers(0, 200))}
            else:
                values[key] = {"cost": 10.0}
        table.add(values)
        return len(values)
    return measure


def test_an_allocation_is_never_worse_on_its_device_than_a_rivals(monkeypatch, tmp_path):
    """rivals: the allocation for the A76 also costs the A72's allocation (same budget) on the A76 and takes it
    when it meets the budget there losing less: the file allocated for a device is at least as good there as
    one allocated for another device, which the greedy alone does not guarantee."""
    model = three_convs()
    template = export_bytes(model, "float32", None)
    taken = 0
    for seed in (1, 2):  # (of seeds 0-5, 2 and 4 make the greedy alone do worse than the A72's allocation)
        monkeypatch.setenv("EDGEPRUNE_COST_DIR", str(tmp_path / f"cost{seed}"))
        monkeypatch.setattr(allocate_mod, "measure_missing", device_costs(seed))
        kw = dict(precision="float32", template=template, best_effort=True)
        ours = allocate_mod.allocate(model, "qemu-aarch64-a76", {"reduction": 2.2}, rivals=["qemu-aarch64"], **kw)
        alone = allocate_mod.allocate(model, "qemu-aarch64-a76", {"reduction": 2.2}, **kw)
        theirs = allocate_mod.allocate(model, "qemu-aarch64", {"reduction": 2.2}, **kw)
        lost = {name: sum(s["importance_lost"] for s in a.steps) for name, a in
                (("alone", alone), ("theirs", theirs))}
        assert ours.met and alone.met
        if ours.taken_from:
            taken += 1
            assert ours.counts == theirs.counts and lost["theirs"] < lost["alone"]
        else:
            assert ours.counts == alone.counts
    assert taken >= 1
