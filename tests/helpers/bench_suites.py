"""A tiny bench suite written into a folder: what the bench tests read (unit) and run (e2e)."""
from pathlib import Path

import yaml

TRAIN = {"epochs": 1, "batch_size": 64, "learning_rate": 0.002, "lr_schedule": "cosine", "patience": 0}
DATA = {"name": "fashion_mnist", "val_fraction": 0.1, "max_train_samples": 1500, "test_samples": 300}
BENCH = {"devices": ["host"], "runs": 5, "warmup": 1, "eval_samples": 0}


def _recipe(name, steps):
    return {"name": name, "seed": 0, "model": "lenet5", "dataset": DATA, "steps": [{"train": TRAIN}, *steps]}


def tiny_suite(tmp_path: Path) -> Path:
    """A one-group bench suite of two tiny LeNet-5 recipes (dense reference, 60% pruned) on 1,500 images."""
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
