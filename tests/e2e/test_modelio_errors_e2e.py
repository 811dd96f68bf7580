"""Bad inputs to read_model/save_model fail as one clear line, name the file/layer/key, write nothing."""
from pathlib import Path

import pytest

from edgeprune.errors import ModelLoadError
from edgeprune.keras import keras as tfk
from edgeprune.modelio import read_model


def assert_one_line(err, *needles):
    text = str(err.value)
    assert "\n" not in text and err.value.fix
    for needle in needles:
        assert needle in text, text


def test_truncated_h5(tmp_path):
    model = tfk.Sequential([tfk.Input((8,)), tfk.layers.Dense(2)])
    model.save(tmp_path / "full.h5")
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "cut.h5")
    assert_one_line(err, "cut.h5")


def test_weights_only_h5(tmp_path):
    model = tfk.Sequential([tfk.Input((8,)), tfk.layers.Dense(2)])
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "w.weights.h5")
    assert_one_line(err, "no model config", "save_weights")


def test_hdf5_whose_heap_makes_libhdf5_loop_is_refused_in_time(monkeypatch):
    """A real bit-flipped .h5 (found by tests/test_robustness.py) on which reading any string attribute
    never returns inside libhdf5: detection reads it in a child process with a time limit."""
    from edgeprune.errors import ModelLoadError
    from edgeprune.modelio import detect

    monkeypatch.setattr(detect, "H5_READ_TIMEOUT_S", 3)
    with pytest.raises(ModelLoadError, match="corrupt HDF5 file .*did not finish in 3 s"):
        detect.detect(Path(__file__).resolve().parents[1] / "data" / "damaged_heap_loop.h5")
