"""Input scaling is explicit: uint8 pixels become inputs as `scaling` says (unit, the default: pixel/255;
raw: as stored; symmetric: pixel/127.5 - 1), float data are used as stored, and the choice shows in the
run's first lines, the report and the exported metadata."""
import json

import numpy as np
import pytest

from edgeprune.data import load_dataset
from edgeprune.errors import EdgepruneError

RANGES = {None: (0.0, 1.0), "unit": (0.0, 1.0), "raw": (0.0, 255.0), "symmetric": (-1.0, 1.0)}


def uint8_npz(path, with_val=False):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255  # the extremes are in every split below
    arrays = dict(x_train=x, y_train=rng.integers(0, 3, 40), x_test=x[:10].copy(), y_test=rng.integers(0, 3, 10))
    if with_val:
        arrays.update(x_val=x[:5].copy(), y_val=rng.integers(0, 3, 5))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("scaling", [None, "unit", "raw", "symmetric"])
def test_uint8_npz_read_with_each_scaling_gives_its_range(tmp_path, scaling):
    path = uint8_npz(tmp_path / "d.npz", with_val=True)
    ds = load_dataset(str(path), scaling=scaling)
    lo, hi = RANGES[scaling]
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32 and x.min() >= lo and x.max() <= hi
    assert (ds.x_test.min(), ds.x_test.max()) == (lo, hi)  # the stored 0 and 255 map onto the ends exactly
    assert ds.scaling == (scaling or "unit")
    assert ("/ 255" if scaling in (None, "unit") else scaling) in ds.describe_scaling()


def test_the_scaling_can_follow_the_name_on_the_command_line(tmp_path):
    path = uint8_npz(tmp_path / "d.npz")
    ds = load_dataset(f"{path}:raw")
    assert ds.scaling == "raw" and ds.x_test.max() == 255.0 and ds.name == "d"
    with pytest.raises(EdgepruneError, match=r"unknown input scaling 'rwa' \(known: unit, raw, symmetric\)"):
        load_dataset(f"{path}:rwa")
    with pytest.raises(EdgepruneError, match="unknown input scaling 'bogus'"):
        load_dataset(str(path), scaling="bogus")
    with pytest.raises(EdgepruneError, match="give the scaling once"):
        load_dataset(f"{path}:raw", scaling="symmetric")


def test_float_arrays_are_used_as_stored(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 200, (30, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x_train=x, y_train=rng.integers(0, 3, 30), x_test=x[:8], y_test=rng.integers(0, 3, 8))
    for scaling in (None, "raw"):
        ds = load_dataset(str(tmp_path / "f.npz"), scaling=scaling, val_fraction=0.0)
        assert ds.scaling is None and ds.normalization is None and np.array_equal(ds.x_test[..., 0], x[:8])
        assert "as stored" in ds.describe_scaling()
    with pytest.raises(EdgepruneError, match="float32 inputs, which are used as stored; scaling 'symmetric'"):
        load_dataset(str(tmp_path / "f.npz"), scaling="symmetric")


def test_image_folder_takes_the_scaling(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            px = np.full((4, 4, 3), 255 if i == 0 else 60 * i, np.uint8)
            Image.fromarray(px).save(tmp_path / "imgs" / cls / f"{i}.png")
    ds = load_dataset(str(tmp_path / "imgs"), scaling="symmetric", val_fraction=0.0)
    x = np.concatenate([ds.x_train, ds.x_test])
    assert ds.scaling == "symmetric" and x.max() == 1.0 and x.min() < 0  # 60 → 60/127.5 - 1 < 0


def _metadata(tmp_path, ds):
    from edgeprune.export.metadata import write_tflite_metadata
    from edgeprune.keras import keras

    inp = keras.Input((6, 6, 1))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)))
    written = write_tflite_metadata(tmp_path / f"m-{ds.scaling}.tflite", model, ds)
    return json.loads(written["metadata"].read_text())["subgraph_metadata"][0]["input_tensor_metadata"][0]


@pytest.mark.parametrize("scaling,mean,std,lo,hi", [("unit", 0.0, 255.0, 0.0, 1.0), ("raw", 0.0, 1.0, 0.0, 255.0),
                                                    ("symmetric", 127.5, 127.5, -1.0, 1.0)])
def test_exported_metadata_follows_the_scaling(tmp_path, scaling, mean, std, lo, hi):
    path = uint8_npz(tmp_path / "d.npz")
    ds = load_dataset(str(path), scaling=scaling)
    image = _metadata(tmp_path, ds)
    assert image["process_units"] == [{"options_type": "NormalizationOptions", "options": {"mean": [mean], "std": [std]}}]
    assert image["stats"] == {"max": [hi], "min": [lo]} and f"input scaling {scaling}" in image["description"]
    # an app that applies the metadata's (pixel - mean) / std to the stored pixels feeds what the model was fed
    with np.load(path) as d:
        stored = d["x_test"].astype(np.float32)[..., None]
    assert np.allclose((stored - mean) / std, ds.x_test)
