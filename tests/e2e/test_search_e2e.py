"""Budget search on the host: a MAC budget (graph-measured) and a latency budget (exported + harness)."""
import json

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras, layers
from edgeprune.pruning import model_stats
from edgeprune.devicecost.search import budget_search
from edgeprune.strategies.trialio import load_model_file
from edgeprune.train import fit


@pytest.fixture(scope="module")
def data(fashion_mnist):
    return fashion_mnist.subset(train=2000, val=400, test=100)


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(10, activation="softmax", name="out")(x)
    model = keras.Model(inp, x, name="searchnet")
    fit(model, data, epochs=2, batch_size=64, patience=None)
    return model


@pytest.mark.slow  # trains candidates
def test_mac_budget_met_on_host(trained, data, tmp_path):
    macs0 = model_stats(trained)["macs"]
    limit = 0.6 * macs0
    res = budget_search(trained, data, device="host", budget={"macs": limit}, max_drop=100.0, run_dir=tmp_path,
                        ratios=(0.3, 0.6), refine_steps=1, finetune_epochs=0, max_val_samples=300)
    assert res.status == "ok" and res.best is not None
    best = load_model_file(tmp_path / "search" / "best.keras")
    assert model_stats(best)["macs"] == res.best["measured"]["macs"] <= limit
    summary = json.loads((tmp_path / "search" / "summary.json").read_text())
    assert summary["best"]["trial"] == res.best["trial"] and summary["baseline"]["macs"] == macs0
    trials = sorted((tmp_path / "search").glob("trial-*.json"))
    assert len(trials) == len(res.trials) >= 3  # baseline, grid, a bisection step
    assert (tmp_path / "sensitivity.json").exists()
    # the least-pruned candidate that fits wins: no smaller ratio met the budget
    fitting = [t["settings"]["ratio"] for t in res.trials if t["measured"]["meets_budget"]]
    assert res.best["settings"]["ratio"] == min(fitting)
    # an impossible accuracy floor is reported, not hidden
    strict = budget_search(trained, data, device="host", budget={"macs": limit}, max_drop=0.0, run_dir=tmp_path / "strict",
                           sensitivity=None, use_sensitivity=False, ratios=(0.6,), refine_steps=0, finetune_epochs=0,
                           max_val_samples=300)
    assert strict.status in ("ok", "accuracy_drop_exceeded")
    assert (strict.status == "ok") == (strict.best["measured"]["accuracy_drop_points"] <= 0)


@pytest.mark.slow  # trains candidates
def test_latency_budget_measured_with_host_harness(trained, data, tmp_path):
    res = budget_search(trained, data, device="host", budget={"latency_ms": 1e3}, max_drop=100.0, run_dir=tmp_path,
                        use_sensitivity=False, ratios=(0.5,), refine_steps=0, finetune_epochs=0, runs=20, warmup=2,
                        max_val_samples=200)
    assert res.best is not None
    for t in res.trials:
        m = t["measured"]
        assert 0 < m["latency_ms"] < 1e3 and m["file_bytes"] > 0
        assert (tmp_path / "search" / f"candidate-{t['index']:03d}-none.tflite").stat().st_size == m["file_bytes"]
    # fewer channels, smaller file
    assert res.trials[1]["measured"]["file_bytes"] < res.trials[0]["measured"]["file_bytes"]
    with pytest.raises(EdgepruneError, match="unknown device"):
        budget_search(trained, data, device="no-such-board", budget={"latency_ms": 1.0}, run_dir=tmp_path / "x")
