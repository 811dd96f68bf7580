"""`python -m edgeprune.bench_suite`: product recipes end to end on a tiny suite, and the pieces it judges with."""

import pytest
import yaml

from edgeprune.bench_suite import summary
from edgeprune.bench_suite.report import render_markdown
from edgeprune.bench_suite.suite import DEFAULT_SUITE, Targets, check_budget, epochs_after_training, load_suite
from edgeprune.bench_suite.tfmot import pruning_schedule_steps
from edgeprune.bench_suite.trials import shrink
from edgeprune.errors import EdgepruneError
from edgeprune.recipe.schema import load_recipe
from helpers.bench_suites import tiny_suite



def test_shipped_suite_is_valid_and_every_variant_gets_the_same_epochs():
    suite = load_suite(DEFAULT_SUITE)
    budgets = check_budget(suite)
    assert {"lenet5-mnist", "resnet8-fashion_mnist", "quickstart"} <= set(budgets)
    assert budgets["lenet5-mnist"]["same_budget"] and budgets["resnet8-fashion_mnist"]["same_budget"]
    for g in suite.groups:  # quick mode keeps every recipe valid for the normal schema
        for rel in [g.reference, *g.edgeprune]:
            data = shrink(yaml.safe_load(suite.recipe_path(rel).read_text()), {"max_train_samples": 100, "runs": 2})
            assert data["dataset"]["max_train_samples"] == 100


def test_budget_check_refuses_a_variant_that_trains_longer(tmp_path):
    path = tiny_suite(tmp_path)
    data = yaml.safe_load((tmp_path / "edgeprune.yaml").read_text())
    data["steps"][2]["finetune"]["epochs"] = 3
    (tmp_path / "edgeprune.yaml").write_text(yaml.safe_dump(data))
    assert epochs_after_training(load_recipe(tmp_path / "edgeprune.yaml")) == 4
    with pytest.raises(EdgepruneError, match="trains 4 epochs after the baseline, the reference 2"):
        check_budget(load_suite(path))
    data["steps"][2]["finetune"]["epochs"] = 1
    data["steps"][0]["train"]["epochs"] = 2
    (tmp_path / "edgeprune.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(EdgepruneError, match="does not share the reference's model, data and train step"):
        check_budget(load_suite(path))


def test_suite_errors_are_one_line(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"devices": ["host"], "groups": [{"name": "g", "reference": "missing.yaml",
                                                                     "edgeprune": ["missing.yaml"],
                                                                     "targets": {"device": "host", "max_loss_pt": 1}}]}))
    with pytest.raises(EdgepruneError, match="recipe missing.yaml does not exist"):
        load_suite(path)
    path.write_text(yaml.safe_dump({"devices": ["host"], "groups": [], "extra": 1}))
    with pytest.raises(EdgepruneError, match="suite.yaml: 'groups'"):
        load_suite(path)


def _variant(name, kind, acc, bytes_, instr, ships_on=None):
    return {"variant": name, "kind": kind, "artifact": f"exports/{name}.tflite", "test_accuracy": acc,
            "file_bytes": bytes_, "params": 1, "macs": 1, "test_samples": 10000, "run_dir": "r", "recipe": "x",
            "devices": {"qemu": {"instructions": instr, "p50_ms": 1.0, "emulated": True}},
            **({"ships_on": ships_on} if ships_on else {})}


def _variants(ep_acc, ep_bytes, ep_instr):
    rows = [_variant("float32", "reference", 0.99, 1_700_000, 1_300_000),
            _variant("ptq-int8", "reference", 0.9895, 450_000, 1_950_000),
            _variant("ours", "edgeprune", ep_acc, ep_bytes, ep_instr, ships_on=["qemu"])]
    summary.add_ratios(rows, ["qemu"])
    return rows


def test_targets_met_at_exactly_the_budget_with_margins():
    rows = _variants(ep_acc=0.988, ep_bytes=28_000, ep_instr=325_000)
    t = summary.check_targets(rows, Targets(device="qemu", max_loss_pt=0.2, x_vs_ptq=6, size_x_vs_float=60,
                                            baseline_accuracy=0.99), baseline_accuracy=0.99)
    base, acc, instr, size = t
    assert base["met"] and base["margin"] == pytest.approx(0.0) and base["judged"] == "baseline (train step)"
    assert acc["measured"] == pytest.approx(0.2) and acc["met"] and acc["judged"] == "ours"
    assert instr["measured"] == pytest.approx(6.0) and instr["met"]
    assert size["measured"] == pytest.approx(1_700_000 / 28_000) and size["met"]


def test_targets_missed_are_marked_with_the_shortfall():
    rows = _variants(ep_acc=0.985, ep_bytes=100_000, ep_instr=900_000)
    t = summary.check_targets(rows, Targets(device="qemu", max_loss_pt=0.2, x_vs_ptq=6, size_x_vs_float=60))
    acc, instr, size = t
    assert acc["met"] is False and acc["margin"] == pytest.approx(-0.3)
    assert instr["met"] is False and instr["margin"] == pytest.approx(1_950_000 / 900_000 / 6)
    doc = {"command": "x", "date": "2026-01-01", "seconds": 60, "json_name": "x.json", "suite": "suite.yaml",
           "devices": ["qemu"], "environment": {}, "groups": [{
               "name": "g", "variants": rows, "targets": t, "budget": {"same_budget": True, "after_epochs": 4,
                                                                         "total_epochs": 16},
               "baseline": {"model": "lenet5", "dataset": {"name": "mnist"}, "seed": 0, "test_accuracy_keras": 0.99,
                            "train": {"epochs": 12, "learning_rate": 0.001, "batch_size": 128, "lr_schedule": "cosine"},
                            "val_accuracy_by_epoch": [0.98, 0.99]}}]}
    text = render_markdown(doc)
    assert "| ours | 0.50 pt | **no** | 0.30 pt over |" in text and "1,950,000" in text
    assert "- g: accuracy loss vs float32 ≤ 0.2 pt (ours: 0.50 pt)" in text
    assert "trains 12 epochs" in text and "4 more epochs" in text and "98.00, 99.00%" in text


def test_no_shipped_file_for_the_target_device_is_a_miss():
    rows = _variants(ep_acc=0.99, ep_bytes=1, ep_instr=1)
    rows[2]["ships_on"] = ["other"]
    [row] = summary.check_targets(rows, Targets(device="qemu", max_loss_pt=0.2))
    assert row["met"] is False and "no edgeprune run measured qemu" in row["note"]


def test_each_board_judges_the_file_allocated_for_it_against_the_others():
    """also_devices: the × below PTQ int8 target per board; allocated_for: on each board the file its own
    recipe ships costs no more than the other board's recipe's file there (a miss when it costs more)."""
    def cell(instr):
        return {"instructions": instr, "p50_ms": 1.0, "emulated": True}

    rows = [_variant("float32", "reference", 0.99, 1_700_000, 0), _variant("ptq-int8", "reference", 0.99, 450_000, 0),
            _variant("a (f)", "edgeprune", 0.99, 28_000, 0, ships_on=["a", "b"]),
            _variant("b (f)", "edgeprune", 0.99, 28_000, 0, ships_on=["a", "b"])]
    for r, (ca, cb) in zip(rows, [(1_300_000, 1_300_000), (1_950_000, 650_000), (300_000, 200_000), (310_000, 100_000)]):
        r["devices"] = {"a": cell(ca), "b": cell(cb)}
    rows[2]["recipe"], rows[3]["recipe"] = "rec-a", "rec-b"
    summary.add_ratios(rows, ["a", "b"])
    t = summary.check_targets(rows, Targets(device="a", also_devices=["b"], max_loss_pt=0.2, x_vs_ptq=3,
                                            allocated_for={"a": "rec-a", "b": "rec-b"}))
    x = {(r["judged"], r["target"].split(":")[0]): r for r in t if "PTQ int8" in r["target"]}
    assert x[("a (f)", "b")]["measured"] == pytest.approx(3.25) and x[("b (f)", "b")]["measured"] == pytest.approx(6.5)
    on_a, on_b = [r for r in t if "allocated for it" in r["target"]]
    assert on_a["measured"] == pytest.approx(310 / 300) and on_a["met"] and on_a["judged"] == "rec-a vs rec-b"
    assert on_b["measured"] == pytest.approx(200 / 100) and on_b["met"]
    rows[3]["devices"]["b"] = cell(250_000)
    on_b = [r for r in summary.check_targets(rows, Targets(device="a", max_loss_pt=0.2, allocated_for={
        "a": "rec-a", "b": "rec-b"})) if r["target"].startswith("b:")][0]
    assert on_b["met"] is False and on_b["measured"] == pytest.approx(0.8)


def test_pruning_schedule_reaches_target_inside_the_run():
    for total in (1, 7, 16, 64, 422, 1688):
        end, freq = pruning_schedule_steps(total)
        assert 1 <= end <= total and end % freq == 0 and freq >= 1
    assert pruning_schedule_steps(64)[1] < 100  # the tfmot default would never fire
