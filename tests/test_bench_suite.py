"""`python -m edgeprune.bench_suite`: quick mode end to end on a real slice, and the pieces it judges with."""
import json

import pytest

from edgeprune.bench_suite import summary
from edgeprune.bench_suite.recipes import pruning_schedule_steps
from edgeprune.bench_suite.report import render_markdown
from edgeprune.bench_suite.settings import BenchSettings, quick_settings
from edgeprune.bench_suite.timing import rep_order
from edgeprune.errors import EdgepruneError
from edgeprune.report.pareto import pareto_front

VARIANTS = {"baseline", "ptq-int8", "tfmot-50", "tfmot-80", "tfmot-2:4", "edgeprune-50", "edgeprune-70"}


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    from edgeprune.bench_suite.__main__ import main

    out, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--devices", "host", "--out", str(out), "--work", str(tmp_path / "work"),
                 "--markdown", str(md), "-q"]) == 0
    [json_path] = out.glob("*.json")
    data = json.loads(json_path.read_text())
    [group] = data["groups"]
    assert (group["model"], group["dataset"]) == ("lenet5", "fashion_mnist")
    rows = {v["variant"]: v for v in group["variants"]}
    assert set(rows) == VARIANTS
    for v in rows.values():
        assert 0.0 <= v["test_accuracy"] <= 1.0 and v["test_samples"] == 500
        assert v["file_bytes"] > 0 and 0 < v["gzip_bytes"]
        host = v["timing"]["host"]
        assert host["p50_ms"] > 0 and host["p90_ms"] >= host["p50_ms"] and host["samples"] == 2 * 20
    # what each recipe must have done, measured on its own output
    assert rows["tfmot-50"]["weight_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert rows["tfmot-80"]["weight_sparsity"] == pytest.approx(0.8, abs=0.02)
    assert rows["tfmot-50"]["file_bytes"] == rows["ptq-int8"]["file_bytes"]  # masks do not shrink the file
    assert rows["edgeprune-70"]["params"] < rows["edgeprune-50"]["params"] < rows["baseline"]["params"]
    assert rows["ptq-int8"]["file_bytes"] < rows["baseline"]["file_bytes"] / 3
    assert group["judged"] in ("edgeprune-50", "edgeprune-70")
    assert {t["target"] for t in group["targets"] if t["measured"] is None} == {
        "aarch64 instructions/inference ≥ 2.5× fewer than ptq-int8",
        "aarch64 instructions/inference ≥ 2.0× fewer than tfmot-50"}  # no emulator asked for
    # the report carries the measured numbers and the plot next to the JSON
    text = md.read_text()
    assert f"{rows['edgeprune-50']['file_bytes']:,}" in text
    assert f"{rows['baseline']['test_accuracy'] * 100:.2f}%" in text
    assert f"{rows['ptq-int8']['timing']['host']['p50_ms']:.3f}" in text
    assert json_path.with_suffix(".png").stat().st_size > 1000
    assert f"]({json_path.relative_to(tmp_path).with_suffix('.png')})" in text


def _row(name, acc, bytes_, host_ms, instr=None, **extra):
    timing = {"host": {"p50_ms": host_ms, "p90_ms": host_ms}}
    if instr is not None:
        timing["qemu"] = {"p50_ms": host_ms * 100, "instructions_per_inference": instr}
    return {"variant": name, "test_accuracy": acc, "file_bytes": bytes_, "gzip_bytes": bytes_, "params": 1,
            "macs": 1, "weight_sparsity": 0.0, "timing": timing, **extra}


def _group(ep_acc, ep_bytes=100_000, ep_ms=0.01, ep_instr=400):
    rows = [_row("baseline", 0.9, 1_700_000, 0.05, 1300), _row("ptq-int8", 0.9, 450_000, 0.025, 2000),
            _row("tfmot-50", 0.9, 450_000, 0.025, 2000),
            _row("edgeprune-50", ep_acc, ep_bytes, ep_ms, ep_instr, ratio=0.5),
            _row("edgeprune-70", ep_acc - 0.02, ep_bytes // 2, ep_ms / 2, ep_instr // 2, ratio=0.7)]
    summary.add_ratios(rows, ["host", "qemu"])
    return rows


def test_targets_met_at_exactly_half_a_point_and_judged_on_most_pruned_level_within_budget():
    rows = _group(ep_acc=0.895)
    judged, targets = summary.check_targets("lenet5", rows, "host", "qemu")
    assert judged == "edgeprune-50"  # edgeprune-70 loses 2.5 pt
    acc = targets[0]
    assert acc["measured"] == pytest.approx(0.5) and acc["met"] is True
    assert all(t["met"] for t in targets), targets
    size = targets[-1]
    assert size["measured"] == pytest.approx(17.0) and size["margin"] == pytest.approx(17.0 / 12)


def test_targets_fail_with_numbers_and_unmeasured_ones_stay_unknown():
    rows = _group(ep_acc=0.894, ep_bytes=200_000, ep_ms=0.02)
    judged, targets = summary.check_targets("resnet8", rows, "host", None)
    assert judged == "edgeprune-50"  # nothing within budget: the most accurate level
    acc, instr_ptq, host_ptq, host_t50, instr_t50, size = targets
    assert acc["met"] is False and acc["measured"] == pytest.approx(0.6)
    assert instr_ptq["met"] is None and instr_t50["met"] is None  # no emulator in this run
    assert host_ptq["measured"] == pytest.approx(1.25) and host_ptq["met"] is False
    assert size["measured"] == pytest.approx(8.5) and size["met"] is False
    assert "dscnn" not in summary.SIZE_TARGET_MODELS and len(summary.check_targets("dscnn", rows, "host", None)[1]) == 5


def test_accuracy_target_not_judged_when_baseline_is_near_chance():
    rows = _group(ep_acc=0.12)
    for v in rows:
        v["test_accuracy"] = 0.134
    summary.add_ratios(rows, ["host", "qemu"])
    _, targets = summary.check_targets("resnet8", rows, "host", "qemu", num_classes=10)
    assert targets[0]["met"] is None and "near chance" in targets[0]["note"]
    _, targets = summary.check_targets("resnet8", rows, "host", "qemu", num_classes=100)
    assert targets[0]["met"] is True


def test_report_renders_unmeasured_and_failed_targets():
    rows = _group(ep_acc=0.894)
    judged, targets = summary.check_targets("lenet5", rows, "host", None)
    doc = {"settings": quick_settings().to_dict(), "host_device": "host", "emulated_device": None,
           "command": "python -m edgeprune.bench_suite --quick", "date": "2026-01-01", "json_name": "x.json",
           "groups": [{"model": "lenet5", "dataset": "mnist", "variants": rows, "judged": judged,
                       "targets": targets}]}
    text = render_markdown(doc, None)
    assert "| 0.60 pt | **no** | 0.10 pt over |" in text
    assert "not measured" in text and "1,700,000" in text and "89.40%" in text


def test_pruning_schedule_reaches_target_inside_the_run():
    for total in (1, 7, 16, 64, 422, 1688):
        end, freq = pruning_schedule_steps(total)
        assert 1 <= end <= total and end % freq == 0 and freq >= 1
    assert pruning_schedule_steps(64)[1] < 100  # the tfmot default would never fire


def test_rep_order_alternates_every_variant_through_first_and_last():
    names = ["a", "b", "c"]
    orders = [rep_order(names, r) for r in range(6)]
    assert all(sorted(o) == names for o in orders)
    assert {o[0] for o in orders} == set(names) and {o[-1] for o in orders} == set(names)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 70.0), (2.0, 75.0), (2.5, 74.0), (3.0, 75.0), (5.0, 80.0)]
    assert [pts[i] for i in pareto_front(pts)] == [(1.0, 70.0), (2.0, 75.0), (5.0, 80.0)]  # the report's one function


@pytest.mark.parametrize("kw", [dict(epochs=0), dict(finetune_epochs=1), dict(qat_epochs=2, finetune_epochs=2),
                                dict(edgeprune_ratios=(1.0,)), dict(runs=0)])
def test_settings_refuse_budgets_that_cannot_run(kw):
    with pytest.raises(EdgepruneError):
        BenchSettings(**kw)


def _tiny_tflite(path, filters):
    from edgeprune.export.tflite import export_tflite
    from edgeprune.keras import keras, layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(filters, 3, activation="relu")(inp)
    x = layers.GlobalAveragePooling2D()(x)
    return export_tflite(keras.Model(inp, layers.Dense(10, activation="softmax")(x)), path)


@pytest.mark.qemu
def test_emulated_timing_counts_instructions_per_variant(tmp_path):
    from edgeprune.bench_suite.timing import time_variants, usable_devices

    profiles, notes = usable_devices(["qemu-aarch64"])
    if not profiles:
        pytest.skip(notes[0])
    files = {"small": _tiny_tflite(tmp_path / "small.tflite", 4), "big": _tiny_tflite(tmp_path / "big.tflite", 32)}
    timed = time_variants(files, profiles[0], runs=2, reps=2, warmup=1)
    assert timed["small"]["samples"] == 4 and timed["big"]["p50_ms"] > 0
    assert 0 < timed["small"]["instructions_per_inference"] < timed["big"]["instructions_per_inference"]
    assert timed["big"]["instructions_spread"] <= timed["big"]["instructions_per_inference"] * 0.01


def test_missing_emulator_is_skipped_with_a_note(monkeypatch):
    from edgeprune.bench_suite import timing
    from edgeprune.errors import DeviceError
    from edgeprune.harness import qemu

    def missing(arch, build=True):
        raise DeviceError(f"no emulated {arch} board", "make qemu-rootfs")

    monkeypatch.setattr(qemu, "ensure_env", missing)
    profiles, notes = timing.usable_devices(["host", "qemu-aarch64"])
    assert [p.name for p in profiles] == ["host"]
    assert notes and "qemu-aarch64 skipped: no emulated aarch64 board" in notes[0]
    with pytest.raises(DeviceError):
        timing.usable_devices(["no-such-board"])


@pytest.mark.slow
def test_criteria_comparison_smoke(tmp_path):
    """Three criteria at one ratio on a small real slice: measured accuracies, a JSON and a Markdown table."""
    import json

    from edgeprune.bench_suite.criteria import run_criteria

    json_path, md = run_criteria(models=["lenet5"], dataset="fashion_mnist", criteria=["l1", "taylor", "apoz"],
                                 ratios=[0.5], epochs=1, criteria_epochs=1, work=tmp_path / "work",
                                 out=tmp_path / "out", markdown=tmp_path / "CRITERIA.md", command="test",
                                 max_train=1500, max_test=300)
    results = json.loads(json_path.read_text())["results"]
    assert [r["criterion"] for r in results] == ["l1", "taylor", "apoz"]
    for r in results:
        assert 0.1 < r["accuracy_finetuned"] <= 1 and r["test_samples"] == 300
        assert r["macs_removed"] > 0.3
    text = md.read_text()
    assert "300 images" in text
    assert f"{results[1]['accuracy_finetuned'] * 100:.2f}" in text
