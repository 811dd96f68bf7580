"""Models that output logits train, distill, quantize and prune like their softmax twins.

The twins share every weight; only the last activation differs.  Cross-entropy from logits and
from the softmax of the same logits are the same function, so the twins must stay equal.
"""
import numpy as np
import pytest
import tensorflow as tf

from edgeprune.keras import keras, layers
from edgeprune.losses import LOGITS, PROBABILITIES, DistillationLoss, output_kind
from helpers.logit_twins import cnn, twins


@pytest.fixture(scope="module")
def data(fashion_small):
    """The session's shared Fashion-MNIST slice (tests/conftest.py)."""
    return fashion_small


def tail(*make):
    x = inp = keras.Input((6,))
    for f in make:
        x = f(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize("model, kind", [
    (lambda: tail(layers.Dense(4, activation="softmax")), PROBABILITIES),
    (lambda: tail(layers.Dense(4), layers.Softmax()), PROBABILITIES),
    (lambda: tail(layers.Dense(4), layers.Activation("softmax"), layers.Reshape((4,)), layers.Dropout(0.1)), PROBABILITIES),
    (lambda: tail(layers.Dense(4), layers.Lambda(tf.nn.softmax)), PROBABILITIES),  # judged from its outputs
    (lambda: tail(layers.Dense(4)), LOGITS),
    (lambda: tail(layers.Dense(4), layers.Activation("linear")), LOGITS),
    (lambda: tail(layers.Dense(4, activation="log_softmax")), LOGITS),
    (lambda: tail(layers.Dense(4), layers.Lambda(lambda t: 2.0 * t)), LOGITS),
])
def test_output_kind(model, kind):
    m = model()
    assert output_kind(m) == kind
    outer_in = keras.Input((6,))
    assert output_kind(keras.Model(outer_in, m(outer_in))) == kind  # nested as the last layer


def test_output_kind_through_qat_wrappers():
    from edgeprune.quantize.qat import quantize_qat

    soft, logit = twins()
    assert output_kind(quantize_qat(soft)) == PROBABILITIES
    assert output_kind(quantize_qat(logit)) == LOGITS


def test_distillation_loss_is_the_same_for_either_output(data):
    soft, logit = twins()
    x, y = data.x_val[:64], data.y_val[:64]
    for student in (soft, logit):
        values = [float(DistillationLoss(teacher, output_kind(student), 4.0)(x, y, student(x)))
                  for teacher in (soft, logit)]
        assert values == pytest.approx([0.0, 0.0], abs=1e-5)  # a twin teaches exactly itself
    other = cnn("softmax", seed=1)
    a = float(DistillationLoss(other, LOGITS, 1.0)(x, y, logit(x)))
    b = float(DistillationLoss(other, PROBABILITIES, 1.0)(x, y, soft(x)))
    assert a == pytest.approx(b, rel=1e-4) and a > 1e-3


def test_taylor_scores_match_the_softmax_twin(data, monkeypatch):
    from edgeprune.pruning import importance
    from edgeprune.pruning.graph import build_graph

    soft, logit = twins()
    s = importance.compute_scores(build_graph(soft), "taylor", data)
    g = importance.compute_scores(build_graph(logit), "taylor", data)
    assert s.keys() == g.keys()
    np.testing.assert_allclose([g[k] for k in s], [s[k] for k in s], rtol=1e-3)
    # negative control: reading the logits as probabilities changes the ranking
    monkeypatch.setattr(importance, "output_kind", lambda model: PROBABILITIES)
    wrong = importance.compute_scores(build_graph(logit), "taylor", data)
    assert not np.allclose([wrong[k] for k in s], [s[k] for k in s], rtol=0.05)
