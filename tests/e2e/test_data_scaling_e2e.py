"""Input scaling is explicit: uint8 pixels become inputs as `scaling` says (unit, the default: pixel/255;
raw: as stored; symmetric: pixel/127.5 - 1), float data are used as stored, and the choice shows in the
run's first lines, the report and the exported metadata."""
import json

import numpy as np


def uint8_npz(path, with_val=False):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255  # the extremes are in every split below
    arrays = dict(x_train=x, y_train=rng.integers(0, 3, 40), x_test=x[:10].copy(), y_test=rng.integers(0, 3, 10))
    if with_val:
        arrays.update(x_val=x[:5].copy(), y_val=rng.integers(0, 3, 5))
    np.savez(path, **arrays)
    return path


def test_the_run_prints_and_reports_the_scaling(tmp_path):
    """The run's dataset line, metrics.json and the report name the scaling (no training: a report-only recipe)."""
    from edgeprune.keras import keras
    from edgeprune.recipe import run_recipe
    from edgeprune.report import build_report
    from edgeprune.report.sections import environment, headline

    uint8_npz(tmp_path / "d.npz")
    inp = keras.Input((6, 6, 1))
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp))).save(tmp_path / "m.keras")
    (tmp_path / "r.yaml").write_text("name: s\nmodel: m.keras\ndataset: {name: d.npz, scaling: raw}\n"
                                     "steps:\n  - report: {formats: [json]}\n")
    lines = []
    run_dir = run_recipe(tmp_path / "r.yaml", out_dir=tmp_path / "run", log=lines.append)
    dataset_line = next(line for line in lines[:3] if "dataset d:" in line)
    assert "uint8 pixels as stored, 0..255 (scaling: raw)" in dataset_line
    assert json.loads((run_dir / "metrics.json").read_text())["dataset"]["scaling"] == "raw"
    report = build_report(run_dir, weights=False)
    assert "scaling: raw" in headline(report)
    assert ["input scaling", "uint8 pixels as stored, 0..255 (scaling: raw)"] in environment(report).tables[0].rows
