"""Schedules, distillation fine-tuning, sensitivity, sparsity training and input-feature pruning on real slices."""
import json

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError, UnsupportedLayerError
from edgeprune.keras import keras, layers
from edgeprune.pruning import model_stats, prune
from edgeprune.strategies.schedule import gradual_prune, group_widths
from edgeprune.strategies.sensitivity import count_sensitivity, sensitivity_overrides, sensitivity_scan
from edgeprune.train import evaluate, fit


@pytest.fixture(scope="module")
def data(fashion_mnist):
    return fashion_mnist.subset(train=3000, val=500, test=200)


def cnn(seed=0, bn=False):
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = layers.Conv2D(24, 3, strides=2, use_bias=not bn, activation=None if bn else "relu", name="conv2")(x)
    if bn:
        x = layers.BatchNormalization(name="bn2")(x)
        x = layers.ReLU(name="relu2")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(40, activation="relu", name="fc")(x)
    x = layers.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inp, x, name="cnn")


@pytest.fixture(scope="module")
def trained(data):
    model = cnn()
    fit(model, data, epochs=2, batch_size=64, patience=None)
    return model


@pytest.mark.slow  # trains
@pytest.mark.parametrize("schedule", ["linear", "polynomial"])
def test_gradual_reaches_target_in_steps(trained, data, schedule):
    widths0 = group_widths(trained)
    res = gradual_prune(trained, data, target_ratio=0.5, steps=3, schedule=schedule, finetune_epochs=1 if schedule == "linear" else 0,
                        max_train_samples=1000, batch_size=64)
    assert [h["step"] for h in res.history] == [1, 2, 3] and len(res.plans) == 3
    ratios = [h["ratio"] for h in res.history]
    assert ratios == sorted(ratios) and ratios[0] > 0
    assert ratios[-1] == pytest.approx(0.5, abs=0.02)
    widths = group_widths(res.model)
    for src, n0 in widths0.items():  # every group at its own target, not only the total
        assert widths[src] == round(n0 * 0.5)
    if schedule == "polynomial":
        assert ratios[0] > 0.5 / 3 + 0.05
    else:
        assert res.history[-1]["val_accuracy"] >= res.history[-1]["val_accuracy_before_ft"]
    assert res.history[-1]["macs"] < model_stats(trained)["macs"]


@pytest.mark.slow  # trains
def test_gradual_global_pruning_hits_total(trained, data):
    res = gradual_prune(trained, data, target_ratio=0.4, steps=2, finetune_epochs=0, global_pruning=True)
    assert res.history[-1]["ratio"] == pytest.approx(0.4, abs=0.02)


@pytest.mark.slow  # trains
def test_distillation_finetune_recovers_pruned_model(trained, data):
    pruned, _ = prune(trained, 0.7)
    before = evaluate(pruned, data.x_val, data.y_val)
    result = fit(pruned, data, epochs=1, teacher=trained, temperature=4.0, alpha=0.7, batch_size=64, patience=None)
    assert result.val_accuracy > before + 0.02, (before, result.val_accuracy)
    assert evaluate(trained, data.x_val, data.y_val) > 0.6  # the teacher is a real (if short-trained) model


@pytest.mark.slow  # trains
def test_sensitivity_scan_writes_curves(trained, data, tmp_path):
    res = sensitivity_scan(trained, data, ratios=(0.3, 0.7), run_dir=tmp_path, max_val_samples=300)
    saved = json.loads((tmp_path / "sensitivity.json").read_text())
    assert saved["ratios"] == [0.3, 0.7]
    assert set(saved["curves"]) == {"conv2", "conv3", "fc"}  # conv1 is protected (first layer)
    assert all(len(c) == 2 and all(0.0 <= a <= 1.0 for a in c) for c in saved["curves"].values())
    assert saved["baseline_val_accuracy"] == res.baseline_val_accuracy > 0.6
    assert len(list((tmp_path / "sensitivity").glob("trial-*.json"))) == 6
    # pruning 70% of one group without fine-tuning costs something somewhere
    assert min(c[-1] for c in res.curves.values()) < res.baseline_val_accuracy
    over = sensitivity_overrides(res, 0.4)
    pruned, plan = prune(trained, 0.0, overrides=over)
    total = sum(g["channels"] for g in plan.groups if g["prunable"])
    kept = sum(g["kept"] for g in plan.groups if g["prunable"])
    assert 1 - kept / total == pytest.approx(0.4, abs=0.03)


@pytest.mark.slow  # trains
def test_count_sensitivity_cuts_each_group_to_exactly_the_asked_counts(trained, data, tmp_path):
    base, acc = count_sensitivity(trained, data, {"conv2": [1, 12, 24], "fc": [10, 40]}, run_dir=tmp_path,
                                  max_val_samples=300)
    assert set(acc) == {"conv2", "fc"} and set(acc["conv2"]) == {1, 12} and set(acc["fc"]) == {10}  # full: no trial
    trials = [json.loads(p.read_text()) for p in (tmp_path / "sensitivity").glob("trial-*.json")]
    assert sorted((t["source"], t["kept"]) for t in trials) == [("conv2", 1), ("conv2", 12), ("fc", 10)]
    assert base == pytest.approx(evaluate(trained, data.x_val[:300], data.y_val[:300]), abs=1e-6)
    assert acc["conv2"][1] < base - 0.1  # one of 24 channels left, no fine-tuning: most is lost
    assert not (tmp_path / "sensitivity" / "model.keras").exists()  # the copies go, the trial JSONs stay


def test_sparsity_training_shrinks_gammas(data):
    from edgeprune.strategies.sparsity import channel_magnitudes, sparsity_train

    small = data.subset(train=1500)
    plain, sparse = cnn(bn=True), cnn(bn=True)
    sparsity_train(plain, small, epochs=1, strength=0.0, learning_rate=3e-3, batch_size=16)
    hist = sparsity_train(sparse, small, epochs=1, strength=3e-2, learning_rate=3e-3, batch_size=16)
    assert {"loss", "penalty", "accuracy", "val_accuracy"} <= set(hist)
    g_plain, g_sparse = channel_magnitudes(plain, "bn_gamma"), channel_magnitudes(sparse, "bn_gamma")
    assert g_sparse.mean() < 0.85 * g_plain.mean()
    assert hist["val_accuracy"][-1] > 0.5  # still a working classifier
    lasso = cnn(bn=True)
    before = channel_magnitudes(lasso, "group_lasso").sum()
    sparsity_train(lasso, small, epochs=1, penalty="group_lasso", strength=1e-2, learning_rate=3e-3, batch_size=32)
    assert channel_magnitudes(lasso, "group_lasso").sum() < before
    with pytest.raises(EdgepruneError, match="BatchNormalization"):
        sparsity_train(cnn(), small, epochs=1)


@pytest.mark.slow  # trains
def test_input_feature_pruning_on_mlp(data):
    from edgeprune.strategies.features import feature_means, prune_input_features, slice_dataset, slice_features

    keras.utils.set_random_seed(0)
    x = inp = keras.Input((28, 28, 1))
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="hidden")(x)
    x = layers.Dense(10, activation="softmax", name="out")(x)
    mlp = keras.Model(inp, x)
    fit(mlp, data, epochs=2, batch_size=64, patience=None)
    base = evaluate(mlp, data.x_val, data.y_val)
    for method in ("weight_norm", "gradient"):
        small, kept = prune_input_features(mlp, data, ratio=0.5, method=method)
        assert small.input_shape == (None, 392) and len(kept) == 392 and kept == sorted(kept)
        sliced = slice_dataset(data, kept)
        acc = evaluate(small, sliced.x_val, sliced.y_val)
        assert acc > 0.5, (method, base, acc)  # chance is 0.1 (measured: a random half scores about the same)
        # same function as the original when the dropped features hold their training means
        x0 = data.x_val[:32].reshape(32, -1).copy()
        mask = np.zeros(784, bool)
        mask[kept] = True
        x0[:, ~mask] = feature_means(data, 784)[~mask]
        np.testing.assert_allclose(small.predict(slice_features(x0, kept), verbose=0),
                                   mlp.predict(x0.reshape(32, 28, 28, 1), verbose=0), atol=1e-5)
        fit(small, sliced, epochs=1, batch_size=64, patience=None)
        tuned = evaluate(small, sliced.x_val, sliced.y_val)
        assert tuned > acc + 0.03, (method, base, acc, tuned)  # the smaller input model trains on
    # the always-black image border is dropped first
    _, kept = prune_input_features(mlp, data, keep=400)
    border = [r * 28 + c for r in range(28) for c in range(28) if min(r, c, 27 - r, 27 - c) == 0]
    assert not set(border) & set(kept)
    with pytest.raises(UnsupportedLayerError, match="Dense"):
        prune_input_features(cnn(), data, ratio=0.5)
    with pytest.raises(EdgepruneError, match="exactly one"):
        prune_input_features(mlp, data)
