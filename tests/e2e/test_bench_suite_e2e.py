"""`python -m edgeprune.bench_suite`: product recipes end to end on a tiny suite, and the pieces it judges with."""
import json
from pathlib import Path

import pytest
import yaml

from helpers.bench_suites import tiny_suite


@pytest.mark.slow
def test_tiny_suite_end_to_end_through_the_product(tmp_path, monkeypatch):
    from edgeprune.bench_suite.__main__ import main

    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path / "cache"))
    out, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    assert main(["--suite", str(tiny_suite(tmp_path)), "--out", str(out), "--work", str(tmp_path / "work"),
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
