"""Sparse 1×1 convs end to end (issue 20 item 4): a qualifying sparse file is cheaper than its dense twin on the
emulated Cortex-A72, and a recipe with ``finetune: {sparse_1x1: 0.8}`` + ``export: {precision: auto}`` exports and
benchmarks the sparse file, or says in one note why the model does not qualify."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeprune.recipe import run_recipe
from helpers.sparse_models import problems, tiny_mobilenet, zero_1x1


def _wide_mobilenet(sym=True):
    """32×32×3 → stem 16 → 3 blocks with 96-channel 1×1 expands: the 1×1 convs hold most of the work."""
    from edgeprune.keras import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((32, 32, 3))
    x = L.Conv2D(16, 3, strides=2, padding="valid", name="Conv1")(L.ZeroPadding2D(1, name="stem_pad")(inp))
    x = L.ReLU(6.0)(x)
    for i, (cout, stride) in enumerate([(24, 1), (32, 2), (32, 1)]):
        cin = x.shape[-1]
        h = L.ReLU(6.0)(L.Conv2D(96, 1, name=f"b{i}_expand")(x))
        if stride == 2:
            h = L.DepthwiseConv2D(3, strides=2, padding="valid", name=f"b{i}_depthwise")(L.ZeroPadding2D(1)(h))
        else:
            h = L.DepthwiseConv2D(3, padding="same", name=f"b{i}_depthwise")(h)
        h = L.Conv2D(cout, 1, name=f"b{i}_project")(L.ReLU(6.0)(h))
        x = L.Add()([x, h]) if stride == 1 and cin == cout else h
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x))


@pytest.mark.slow
@pytest.mark.qemu
def test_sparse_file_is_cheaper_on_the_emulated_a72(tmp_path):
    from edgeprune.errors import DeviceError
    from edgeprune.export import runtime
    from edgeprune.export.sparse_1x1 import sparse_1x1_problems
    from edgeprune.export.tflite import export_tflite
    from edgeprune.harness.backends import run_on_device
    from edgeprune.harness.profiles import get_profile
    from edgeprune.harness.qemu import ensure_env

    try:
        ensure_env("aarch64", build=False)
    except DeviceError as e:
        pytest.skip(f"emulated aarch64 board not available: {e}")
    model = zero_1x1(_wide_mobilenet(), 0.8)
    dense = export_tflite(model, tmp_path / "dense.tflite", quant="none")
    sparse = export_tflite(model, tmp_path / "sparse.tflite", quant="sparse")
    assert sparse_1x1_problems(sparse.read_bytes()) == []
    assert runtime.quant_mode(sparse) == "sparse" and sparse.stat().st_size < dense.stat().st_size

    # on the host (x86: XNNPACK never takes the path) the sparse file computes what the dense one does
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(runtime.predict(sparse, x), runtime.predict(dense, x), atol=1e-5)

    profile = get_profile("qemu-aarch64")
    measured = {p.stem: run_on_device(profile, p, eval_npz=None, runs=3, warmup=5) for p in (dense, sparse)}
    d, s = measured["dense"], measured["sparse"]
    assert s["board_time_ms"] < d["board_time_ms"], measured
    assert s["instructions_per_inference"] < d["instructions_per_inference"], measured


# ---------------------------------------------------------------- recipe
def _rgb_npz(path: Path, fashion) -> Path:
    """A small 32×32×3 uint8 data set from Fashion-MNIST (padded by 2, grey copied to 3 channels)."""
    def rgb(x):
        u8 = (np.asarray(x[..., 0]) * 255).round().astype(np.uint8) if x.dtype != np.uint8 else x[..., 0]
        return np.repeat(np.pad(u8, ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=-1)

    small = fashion.subset(train=800, val=100, test=200)
    np.savez(path, x_train=rgb(np.concatenate([small.x_train, small.x_val])),
             y_train=np.concatenate([small.y_train, small.y_val]), x_test=rgb(small.x_test), y_test=small.y_test)
    return path


RECIPE = """name: sparse
seed: 0
model: {model}
dataset: {{name: {data}, test_samples: 200}}
steps:
  - train: {{epochs: 1, batch_size: 64}}
  - finetune: {{epochs: 1, batch_size: 64, sparse_1x1: 0.8}}
  - export: {{formats: [tflite], precision: auto, max_accuracy_drop: 100}}
  - benchmark: {{devices: [host], runs: 5, warmup: 1, eval_samples: 50}}
"""


def _run(tmp_path, fashion_mnist, sym: bool) -> dict:
    from edgeprune.keras import keras

    model = tiny_mobilenet(sym=sym, size=32, classes=10)
    model.compile()
    model_path = tmp_path / f"tiny-{'sym' if sym else 'same'}.keras"
    model.save(model_path)
    keras.backend.clear_session()
    data = _rgb_npz(tmp_path / "rgb.npz", fashion_mnist)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(model=model_path, data=data))
    run = run_recipe(recipe, out_dir=tmp_path / "run", log=lambda *a: None)
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_recipe_exports_and_benchmarks_the_sparse_file(tmp_path, fashion_mnist):
    m = _run(tmp_path, fashion_mnist, sym=True)
    [ft] = [s for s in m["steps"] if s["name"] == "finetune"]
    assert ft["sparse_1x1"]["zero_fraction"] >= 0.8 and ft["sparse_1x1"]["layers"] == 6
    exports = {(e["stage"], e["quant"]): e for e in m["exports"]}
    assert ("finetuned", "sparse") in exports, sorted(exports)
    sparse = exports[("finetuned", "sparse")]
    assert sparse["within_tolerance"] is True and sparse["path"].endswith("finetuned-sparse.tflite")
    assert sparse["file_bytes"] < exports[("finetuned", "none")]["file_bytes"]
    benched = [b for b in m["benchmarks"] if b["export"] == sparse["path"]]
    assert benched and benched[0]["quant"] == "sparse" and benched[0]["device"] == "host"
    assert sum(1 for b in m["benchmarks"] if b.get("shipped")) == 1  # the device's measurement decides


@pytest.mark.slow
def test_recipe_notes_why_a_model_does_not_qualify(tmp_path, fashion_mnist):
    m = _run(tmp_path, fashion_mnist, sym=False)
    assert not [e for e in m["exports"] if e["quant"] == "sparse"]
    [ex] = [s for s in m["steps"] if s["name"] == "export"]
    [note] = ex["notes"]
    assert note.startswith("no sparse file for finetuned: ") and "stem 'Conv1' is stride-2 with SAME padding" in note


# conversions to TFLite (seconds each): kept out of the unit tier


def test_int8_file_is_refused_for_precision():
    found = problems(zero_1x1(tiny_mobilenet(sym=True), 0.8), quant="int8")
    assert any(p.startswith("int8 weights") and "float only" in p for p in found), found


def test_sparse_export_refuses_a_model_that_does_not_qualify(tmp_path):
    from edgeprune.export.sparse_1x1 import SparseNotUsable
    from edgeprune.export.targets import get_target

    target = get_target("tflite")
    assert "sparse" in target.precisions and "sparse" not in get_target("onnx").precisions
    with pytest.raises(SparseNotUsable) as err:
        target.write(tiny_mobilenet(sym=False), tmp_path / "m.tflite", quant="sparse")
    assert "stem 'Conv1'" in str(err.value) and err.value.problems
    assert not (tmp_path / "m.tflite").exists()


def test_sparse_export_writes_a_qualifying_model_read_back_as_sparse(tmp_path):
    from edgeprune.export.runtime import quant_mode
    from edgeprune.export.targets import get_target

    path = get_target("tflite").write(zero_1x1(tiny_mobilenet(sym=True), 0.8), tmp_path / "m.tflite", quant="sparse")
    assert quant_mode(path) == "sparse"
