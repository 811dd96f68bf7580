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
