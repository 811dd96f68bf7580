"""Trained models and exported files shared by the e2e files, built once per session."""
import pytest


@pytest.fixture(scope="session")
def trained_lenet5(fashion_small):
    """LeNet-5 trained 2 epochs on `fashion_small` (above 70% test accuracy): "a trained small model" for
    the export, ORT and export-CLI tests.  Shared: use it read-only (clone before changing weights)."""
    from edgeprune import train, zoo

    model = zoo.build("lenet5")
    train.fit(model, fashion_small, epochs=2, batch_size=64, patience=None)
    assert train.evaluate(model, fashion_small.x_test, fashion_small.y_test) > 0.7  # it learned something real
    return model


@pytest.fixture(scope="session")
def trained_lenet5_h5(trained_lenet5, tmp_path_factory):
    """`trained_lenet5` saved as a tf-keras .h5 file (what a user hands to `edgeprune export`)."""
    path = tmp_path_factory.mktemp("lenet5") / "lenet5.h5"
    trained_lenet5.save(path)
    return path
