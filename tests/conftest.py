"""Shared by both tiers: quiet TensorFlow, and the real data sets, loaded once per session.

tests/unit: no training, no subprocess (`make test-fast`).  tests/e2e: training, recipe runs, CLI
processes, emulated boards; its trained models are shared from tests/e2e/conftest.py."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgeprune  # noqa: E402,F401  (quiets TensorFlow before anything imports it)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fashion_mnist():
    """The whole Fashion-MNIST data set, read once per session; tests take `.subset(...)` of it (the
    splits are views: do not write into them)."""
    from edgeprune.data import load_dataset

    return load_dataset("fashion_mnist")


@pytest.fixture(scope="session")
def fashion_small(fashion_mnist):
    """The small real slice most tests train and check on: 3,000 train, 500 validation, 500 test images."""
    return fashion_mnist.subset(train=3000, val=500, test=500)


@pytest.fixture(scope="session")
def mnist():
    """An MNIST slice as arrays (6,000 train, 2,000 test; read once per session): (x, y, x_test, y_test)."""
    from edgeprune.data.sources import load_mnist

    d = load_mnist(val_fraction=0.1, seed=0)
    return d.x_train[:6000], d.y_train[:6000], d.x_test[:2000], d.y_test[:2000]


@pytest.fixture
def broken_conv_surgery(monkeypatch):
    """Conv2D surgery keeps the wrong output channels (same count, shifted by one): a coupling bug that the
    equivalence check must catch."""
    import numpy as np

    from edgeprune.pruning.rules import RULES

    rule = RULES["Conv2D"]
    shrink = type(rule).shrink

    def wrong(layer, config, weights, keep_in, keep_out):
        return shrink(rule, layer, config, weights, keep_in, np.roll(keep_out, 1))

    monkeypatch.setattr(rule, "shrink", wrong)
