"""`make bench-qat` (edgeprune.bench_suite.qat_backends) without training anything: the Markdown and its
verdicts from a hand-made results JSON, the full-int8 check on hand-made op lists, and the six recipes."""
import json

import pytest

from edgeprune.bench_suite import qat_backends as qb
from edgeprune.recipe.schema import load_recipe


def _trial(key, backend, tflite_acc, full_int8=True, keras_acc=0.95):
    return {"recipe": f"{key}-{backend}", "recipe_path": f"recipes/bench/qat/{key}-{backend}.yaml",
            "run_dir": f"runs/bench-qat/{key}-{backend}", "model": key.split("-")[0], "dataset": key.split("-")[1],
            "train_images": 1000, "test_images": 10000, "backend": backend, "qat_epochs": 2,
            "qat_learning_rate": 1e-4, "baseline_test_accuracy": 0.95, "baseline_reused_from": None,
            "qat_keras_test_accuracy": keras_acc, "tflite_int8_test_accuracy": tflite_acc, "top1_agreement": 0.998,
            "file_bytes": 123456, "tflite_path": "x.tflite", "full_int8": full_int8,
            "float_input_ops": [] if full_int8 else ["FULLY_CONNECTED"], "int8_op_counts": {},
            "qat_seconds": 42.0, "train_seconds": 1.0, "run_seconds": 60.0}


RESULT = {"date": "2026-12-03", "quick": False, "target_pt": 0.2, "seconds": 1500.0,
          "environment": {"python": "3.11.7", "tensorflow": "2.21.0", "cpu_count": 2},
          "executor": {"kind": "inprocess", "workers": 1}, "work_dir": "runs/bench-qat",
          "trials": [_trial("lenet5-mnist", "tfmot", 0.9900), _trial("lenet5-mnist", "native", 0.9915),
                     _trial("resnet8-fashion_mnist", "tfmot", 0.9012), _trial("resnet8-fashion_mnist", "native", 0.8987),
                     _trial("dscnn-fashion_mnist", "tfmot", 0.8800),
                     _trial("dscnn-fashion_mnist", "native", 0.8850, full_int8=False)]}


def test_the_difference_and_verdict_are_computed_from_the_accuracies():
    rows = {r["name"]: r for r in qb.compare(json.loads(json.dumps(RESULT))["trials"])}
    assert rows["lenet5-mnist"]["diff_pt"] == pytest.approx(0.15)
    assert rows["lenet5-mnist"]["met"]
    assert rows["resnet8-fashion_mnist"]["diff_pt"] == pytest.approx(-0.25)
    assert not rows["resnet8-fashion_mnist"]["met"]          # 0.25 pt below tfmot: more than 0.2
    assert rows["dscnn-fashion_mnist"]["accuracy_met"]       # better than tfmot, but a float op in the file
    assert not rows["dscnn-fashion_mnist"]["met"]
    edge = qb.compare([_trial("m-d", "tfmot", 0.9000), _trial("m-d", "native", 0.8980)])[0]
    assert edge["diff_pt"] == pytest.approx(-0.2) and edge["met"]   # exactly 0.2 pt below: within


def test_the_markdown_shows_each_model_with_its_computed_difference_and_verdict():
    md = qb.render_markdown(RESULT)
    for name in ("lenet5-mnist", "resnet8-fashion_mnist", "dscnn-fashion_mnist"):
        assert f"## {name}" in md
    assert "| lenet5-mnist | 99.00% | 99.15% | +0.15 pt | yes | met |" in md
    assert "| resnet8-fashion_mnist | 90.12% | 89.87% | -0.25 pt | yes | missed |" in md
    assert "| dscnn-fashion_mnist | 88.00% | 88.50% | +0.50 pt | no | missed |" in md
    assert "no (FULLY_CONNECTED)" in md
    assert "Native − tfmot: **-0.25 pt**" in md and "**missed**" in md
    assert "2026-12-03" in md and "25.0 min" in md and "tensorflow 2.21.0" in md
    assert "quick smoke run" not in md
    # the same results with one accuracy changed give another verdict: nothing is copied from the JSON
    changed = json.loads(json.dumps(RESULT))
    changed["trials"][3]["tflite_int8_test_accuracy"] = 0.9005
    assert "| resnet8-fashion_mnist | 90.12% | 90.05% | -0.07 pt | yes | met |" in qb.render_markdown(changed)


def test_a_result_missing_a_backend_is_refused():
    with pytest.raises(Exception, match="native"):
        qb.compare([_trial("lenet5-mnist", "native", 0.99)])


def test_full_int8_means_int8_activations_and_weights_in_every_compute_and_add_op():
    conv = {"op": "CONV_2D", "inputs": ["int8", "int8", "int32"]}
    fc = {"op": "FULLY_CONNECTED", "inputs": ["int8", "int8", "int32"]}
    add = {"op": "ADD", "inputs": ["int8", "int8"]}
    edges = [{"op": "QUANTIZE", "inputs": ["float32"]}, {"op": "DEQUANTIZE", "inputs": ["int8"]}]
    assert qb.float_input_ops([*edges, conv, fc, add]) == []
    assert qb.float_input_ops([conv, {"op": "FULLY_CONNECTED", "inputs": ["float32", "int8", "float32"]}]) == ["FULLY_CONNECTED"]
    assert qb.float_input_ops([conv, {"op": "ADD", "inputs": ["int8", "float32"]}]) == ["ADD"]
    assert qb.float_input_ops([{"op": "DEPTHWISE_CONV_2D", "inputs": ["int8", "float32", "float32"]}]) == ["DEPTHWISE_CONV_2D"]


def test_the_six_recipes_load_and_each_pair_differs_only_in_the_backend():
    pairs = qb.recipe_paths()
    assert sorted(pairs) == ["dscnn-fashion_mnist", "lenet5-mnist", "resnet8-fashion_mnist"]
    for key, by_backend in pairs.items():
        dumps = {}
        for backend, path in by_backend.items():
            assert path.read_text().startswith("#"), f"{path}: say on top what it compares"
            recipe = load_recipe(path)
            steps = recipe.step_specs()
            assert [kind for kind, _ in steps] == ["train", "quantize", "export"]
            quant = steps[1][1]
            assert quant.mode == "qat" and quant.backend == backend and quant.batch_size == 128
            assert steps[2][1].formats == ["tflite"] and steps[2][1].stages == {"qat": ["int8"]}
            assert recipe.dataset.test_samples is None        # the full test split
            data = recipe.model_dump()
            data.pop("name")
            data["steps"][1]["quantize"].pop("backend")
            dumps[backend] = data
        assert dumps["tfmot"] == dumps["native"], f"{key}: the recipes differ in more than the backend"
