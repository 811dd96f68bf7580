"""Sparse 1×1 convs (issue 20 item 4): the check that says why a .tflite file cannot take XNNPACK's sparse
path, the finetune setting, and the pruning callback (no training: the callback is called directly)."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from helpers.sparse_models import problems, tflite, tiny_mobilenet, zero_1x1


def test_sym_model_with_zeroed_1x1_kernels_qualifies():
    from edgeprune.export.sparse_1x1 import pointwise_zero_fraction

    data = tflite(zero_1x1(tiny_mobilenet(sym=True), 0.8), "sparse")
    from edgeprune.export.sparse_1x1 import sparse_1x1_problems

    assert sparse_1x1_problems(data) == []
    assert pointwise_zero_fraction(data) >= 0.8


def test_same_padded_stride2_stem_and_depthwise_are_refused_by_name():
    found = problems(zero_1x1(tiny_mobilenet(sym=False), 0.8))
    stem = [p for p in found if p.startswith("stem 'Conv1'")]
    assert stem and "SAME padding" in stem[0] and "ZeroPadding2D(1)" in stem[0], found
    assert any(p.startswith("depthwise 'b2_depthwise'") and "SAME" in p for p in found), found
    assert not any("zero" in p and "needed" in p for p in found), found  # the zeros are there


def test_too_few_zeros_is_refused_with_the_percentage():
    found = problems(zero_1x1(tiny_mobilenet(sym=True), 0.4))
    assert any(p.startswith("1×1 kernels are 40% zero") and "more than 67% needed" in p for p in found), found
    assert not any(p.startswith(("stem", "depthwise")) for p in found), found


def test_dense_storage_is_refused():
    found = problems(zero_1x1(tiny_mobilenet(sym=True), 0.8), quant="none")
    assert len(found) == 1 and found[0].startswith("1×1 kernels are stored dense"), found


def test_no_global_pool_is_refused():
    from edgeprune.keras import keras

    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="pw")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(x)))
    found = problems(zero_1x1(model, 0.9))
    assert any("global average pool" in p for p in found), found


def test_export_precision_accepts_sparse():
    from edgeprune.recipe.steps.export import AUTO_PRECISIONS, ExportStep

    assert "sparse" in AUTO_PRECISIONS
    assert ExportStep(precision=["none", "sparse"]).precision == ["none", "sparse"]


# ---------------------------------------------------------------- settings
def test_finetune_sparse_1x1_setting_is_validated():
    from pydantic import ValidationError

    from edgeprune.recipe.steps.finetune import FinetuneStep

    assert FinetuneStep(sparse_1x1=0.8).sparse_1x1 == 0.8
    assert FinetuneStep().sparse_1x1 is None
    for bad in (0, 1, 1.5, -0.2):
        with pytest.raises(ValidationError):
            FinetuneStep(sparse_1x1=bad)


# ---------------------------------------------------------------- the callback
def test_callback_reaches_the_target_and_keeps_the_mask():
    from edgeprune.strategies.sparse_1x1 import Sparse1x1, pointwise_convs, zero_fraction

    model = tiny_mobilenet(sym=True)
    cb = Sparse1x1(model, 0.8, total_steps=8, ramp=0.5)
    assert len(cb.layers) == len(pointwise_convs(model)) == 6  # 3 expand + 3 project, no depthwise
    seen = []
    for step in range(8):
        cb.on_train_batch_end(step)
        seen.append(zero_fraction(model))
    assert seen == sorted(seen) and seen[0] < 0.8  # gradual
    assert seen[3] >= 0.8  # reached at the ramp's end (4 of 8 batches)
    for layer in cb.layers:  # per layer, not only overall
        assert np.mean(layer.kernel.numpy() == 0) >= 0.8
    # an optimizer step moves zeroed weights: the next batch end zeroes them again
    layer = cb.layers[0]
    layer.kernel.assign(layer.kernel + 0.01)
    cb.on_train_batch_end(8)
    assert np.mean(layer.kernel.numpy() == 0) >= 0.8
    cb.on_train_end()
    assert zero_fraction(model) >= 0.8
    assert cb.summary()["zero_fraction"] >= 0.8


def test_callback_finish_reapplies_after_restored_weights():
    from edgeprune.strategies.sparse_1x1 import Sparse1x1, zero_fraction

    model = tiny_mobilenet(sym=True)
    dense = model.get_weights()
    cb = Sparse1x1(model, 0.75, total_steps=2)
    cb.on_train_batch_end(0)
    cb.on_train_batch_end(1)
    model.set_weights(dense)  # what early stopping's best-weights restore can do after every callback
    assert zero_fraction(model) == 0
    cb.finish()
    assert zero_fraction(model) >= 0.75


def test_callback_needs_1x1_convs_and_a_fraction():
    from edgeprune.keras import keras
    from edgeprune.strategies.sparse_1x1 import Sparse1x1

    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))))
    with pytest.raises(EdgepruneError, match="no 1×1 Conv2D"):
        Sparse1x1(model, 0.8)
    with pytest.raises(EdgepruneError, match="fraction"):
        Sparse1x1(tiny_mobilenet(), 1.0)
