"""`python -m edgeprune.bench_suite`: product recipes end to end on a tiny suite, and the pieces it judges with."""
import json
from pathlib import Path

import pytest
import yaml

from edgeprune.bench_suite import summary
from edgeprune.bench_suite.report import render_markdown
from edgeprune.bench_suite.suite import DEFAULT_SUITE, Targets, check_budget, epochs_after_training, load_suite
from edgeprune.bench_suite.tfmot import pruning_schedule_steps
from edgeprune.bench_suite.trials import shrink
from edgeprune.errors import EdgepruneError
from edgeprune.recipe.schema import load_recipe

TRAIN = {"epochs": 1, "batch_size": 64, "learning_rate": 0.002, "lr_schedule": "cosine", "patience": 0}
DATA = {"name": "fashion_mnist", "val_fraction": 0.1, "max_train_samples": 1500, "test_samples": 300}
BENCH = {"devices": ["host"], "runs": 5, "warmup": 1, "eval_samples": 0}


def _recipe(name, steps):
    return {"name": name, "seed": 0, "model": "lenet5", "dataset": DATA, "steps": [{"train": TRAIN}, *steps]}


def _tiny_suite(tmp_path: Path) -> Path:
    recipes = {
        "dense.yaml": _recipe("tiny-dense", [
            {"finetune": {"epochs": 2, "learning_rate": 0.0005, "patience": 0}},
            {"quantize": {"mode": "ptq", "calibration_samples": 50}},
            {"export": {"formats": ["tflite"], "stages": {"finetuned": ["none", "int8"]}}},
            {"benchmark": BENCH}]),
        "edgeprune.yaml": _recipe("tiny-edgeprune", [
            {"prune": {"ratio": 0.6, "round_to": 4}},
            {"finetune": {"epochs": 1, "learning_rate": 0.0005, "patience": 0}},
            {"quantize": {"mode": "qat", "epochs": 1}},
            {"export": {"formats": ["tflite"]}},
            {"benchmark": BENCH}]),
    }
    for name, data in recipes.items():
        (tmp_path / name).write_text(yaml.safe_dump(data, sort_keys=False))
    suite = {"devices": ["host"], "groups": [{
        "name": "tiny", "reference": "dense.yaml", "edgeprune": ["edgeprune.yaml"],
        "tfmot": {"sparsities": [0.5]},
        "targets": {"device": "host", "max_loss_pt": 50.0, "x_vs_ptq": 1000.0, "size_x_vs_float": 2.0}}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.mark.slow
def test_tiny_suite_end_to_end_through_the_product(tmp_path, monkeypatch):
    from edgeprune.bench_suite.__main__ import main

    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    out, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    assert main(["--suite", str(_tiny_suite(tmp_path)), "--out", str(out), "--work", str(tmp_path / "work"),
                 "--markdown", str(md), "-q"]) == 0
    [json_path] = out.glob("*.json")
    data = json.loads(json_path.read_text())
    [group] = data["groups"]
    assert group["budget"] == {"train_epochs": 1, "after_epochs": 2, "total_epochs": 3, "same_budget": True}
    rows = {v["variant"]: v for v in group["variants"]}
    [ours] = [v for v in group["variants"] if v["kind"] == "edgeprune"]
    assert set(rows) == {"float32", "ptq-int8", "tfmot-50", ours["variant"]} and ours["ships_on"] == ["host"]
    # every file is a product run's export, measured by its benchmark step
    for v in rows.values():
        assert Path(v["run_dir"], v["artifact"]).is_file() and v["test_samples"] == 300
        assert Path(v["run_dir"], v["artifact"]).stat().st_size == v["file_bytes"]
        assert v["devices"]["host"]["p50_ms"] > 0
    # the baseline was trained once by the train step and reused from its cache by the other recipe
    ref_steps = json.loads(Path(rows["float32"]["run_dir"], "metrics.json").read_text())["steps"]
    ep_steps = json.loads(Path(ours["run_dir"], "metrics.json").read_text())["steps"]
    assert "reused_from" not in ref_steps[0] and ep_steps[0]["reused_from"]
    # the edgeprune run went through the prune step (BatchNorm recalibration and all) and QAT
    assert [s["name"] for s in ep_steps][:4] == ["train", "prune", "finetune", "quantize"]
    shipped = ours["artifact"]
    assert shipped in {f["artifact"] for f in group["edgeprune_runs"][0]["files"]}
    # what each variant must be, measured on its own output
    assert rows["tfmot-50"]["weight_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert rows["tfmot-50"]["file_bytes"] == pytest.approx(rows["ptq-int8"]["file_bytes"], rel=0.01)  # masks keep the size
    assert rows["ptq-int8"]["file_bytes"] < rows["float32"]["file_bytes"] / 3
    assert rows["float32"]["ratios"]["loss_pt"] == 0 and rows["ptq-int8"]["ratios"]["host_x_vs_ptq"] == 1
    # targets: a generous accuracy budget is met, an impossible speed-up is not, both with margins
    targets = {t["target"].split(" ")[0]: t for t in group["targets"]}
    assert targets["accuracy"]["met"] is True
    assert targets["host:"]["met"] is False and targets["host:"]["margin"] < 1
    text = md.read_text()
    assert f"{rows['float32']['file_bytes']:,}" in text and f"{rows['ptq-int8']['test_accuracy'] * 100:.2f}%" in text
    assert "## Targets missed" in text and "tiny: host: ≥ 1000× lower p50 latency than PTQ int8" in text
    # the report regenerates from the JSON alone
    md.unlink()
    assert main(["--report-only", str(json_path), "--markdown", str(md)]) == 0 and md.read_text() == text
    # run again: every finished run directory (named by its recipe's content) is reused as it is
    stamps = {v["variant"]: Path(v["run_dir"], "metrics.json").stat().st_mtime_ns for v in rows.values()}
    assert main(["--suite", str(tmp_path / "suite.yaml"), "--out", str(out), "--work", str(tmp_path / "work"),
                 "--markdown", str(md), "-q"]) == 0
    assert stamps == {v["variant"]: Path(v["run_dir"], "metrics.json").stat().st_mtime_ns for v in rows.values()}
    assert json.loads(json_path.read_text())["groups"][0]["variants"] == group["variants"]
    # a changed recipe gets a run directory of its own
    edited = yaml.safe_load((tmp_path / "edgeprune.yaml").read_text())
    edited["steps"][1]["prune"]["ratio"] = 0.5
    (tmp_path / "edgeprune.yaml").write_text(yaml.safe_dump(edited))
    assert main(["--suite", str(tmp_path / "suite.yaml"), "--out", str(out), "--work", str(tmp_path / "work"),
                 "--markdown", str(md), "-q"]) == 0
    [again] = [v for v in json.loads(json_path.read_text())["groups"][0]["variants"] if v["kind"] == "edgeprune"]
    assert again["run_dir"] != ours["run_dir"] and Path(ours["run_dir"], "metrics.json").exists()


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
    path = _tiny_suite(tmp_path)
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


def test_pruning_schedule_reaches_target_inside_the_run():
    for total in (1, 7, 16, 64, 422, 1688):
        end, freq = pruning_schedule_steps(total)
        assert 1 <= end <= total and end % freq == 0 and freq >= 1
    assert pruning_schedule_steps(64)[1] < 100  # the tfmot default would never fire


@pytest.mark.slow
def test_criteria_comparison_smoke(tmp_path, monkeypatch):
    """Three criteria at one ratio on a small real slice, the baseline from the product's train step."""
    from edgeprune.bench_suite.criteria import run_criteria

    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    json_path, md = run_criteria(models=["lenet5"], dataset="fashion_mnist", criteria=["l1", "taylor", "apoz"],
                                 ratios=[0.5], epochs=1, criteria_epochs=1, work=tmp_path / "work",
                                 out=tmp_path / "out", markdown=tmp_path / "CRITERIA.md", command="test",
                                 max_train=1500, max_test=300)
    assert list((tmp_path / "cache" / "trained").glob("*.keras"))  # trained by the train step, cached
    results = json.loads(json_path.read_text())["results"]
    assert [r["criterion"] for r in results] == ["l1", "taylor", "apoz"]
    for r in results:
        assert 0.1 < r["accuracy_finetuned"] <= 1 and r["test_samples"] == 300
        assert r["macs_removed"] > 0.3
    text = md.read_text()
    assert "300 images" in text
    assert f"{results[1]['accuracy_finetuned'] * 100:.2f}" in text


@pytest.mark.qemu
def test_layer_costs_of_two_files_on_the_emulated_board(tmp_path, monkeypatch):
    """The bench's per-layer table: each file profiled op by op, the parts adding up to the whole."""
    from edgeprune.bench_suite.layers import layer_cost_trial
    from edgeprune.export.tflite import export_tflite
    from edgeprune.harness.qemu import ensure_env
    from edgeprune.keras import keras, layers
    from edgeprune.errors import DeviceError

    try:
        ensure_env("aarch64", build=False)
    except DeviceError as e:
        pytest.skip(str(e))
    monkeypatch.setenv("EDGEPRUNE_COST_DIR", str(tmp_path / "cost"))
    files = {}
    for name, filters in (("big", 16), ("small", 4)):
        keras.utils.set_random_seed(0)
        inp = keras.Input((12, 12, 1))
        x = layers.Conv2D(filters, 3, activation="relu", name="conv")(inp)
        x = layers.Flatten()(x)
        out = layers.Dense(10, activation="softmax", name="fc")(x)
        files[name] = str(export_tflite(keras.Model(inp, out), tmp_path / f"{name}.tflite"))
    data = json.loads(Path(layer_cost_trial(files, "qemu-aarch64", str(tmp_path / "layers.json"))).read_text())
    big, small = data["profiles"]["big"], data["profiles"]["small"]
    assert big["metric"] == "board_ms" and {"conv", "fc"} <= set(big["layers"])
    assert 0 < small["layers"]["conv"] < big["layers"]["conv"] and small["whole"] < big["whole"]
    for p in (big, small):  # a model this small is mostly per-op overhead: parts overshoot by ~10%
        assert isinstance(p["within_tolerance"], bool) and 0.8 < p["parts_over_whole"] < 1.25
        assert p["overhead"] > 0 and p["whole"] > p["overhead"]
