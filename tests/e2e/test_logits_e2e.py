"""Models that output logits train, distill, quantize and prune like their softmax twins.

The twins share every weight; only the last activation differs.  Cross-entropy from logits and
from the softmax of the same logits are the same function, so the twins must stay equal.
"""
import pytest

from edgeprune.keras import keras
from edgeprune.losses import LOGITS, PROBABILITIES, output_kind
from edgeprune.pruning import prune
from edgeprune.train import evaluate, fit
from helpers.logit_twins import twins


@pytest.fixture(scope="module")
def data(fashion_small):
    """The session's shared Fashion-MNIST slice (tests/conftest.py)."""
    return fashion_small


@pytest.mark.slow
def test_logits_model_recovers_after_pruning_like_its_softmax_twin(data):
    from edgeprune.quantize.qat import quantize_qat

    def acc(m):
        return evaluate(m, data.x_test, data.y_test)

    soft, logit = twins()
    for m in (soft, logit):
        assert fit(m, data, epochs=2, batch_size=64, patience=None).output_kind == output_kind(m)
    assert acc(logit) == pytest.approx(acc(soft), abs=0.01) and acc(logit) > 0.65
    (p_soft, _), (p_logit, _) = prune(soft, 0.7), prune(logit, 0.7)
    before = acc(p_logit)
    wrong = keras.models.clone_model(p_logit)
    wrong.set_weights(p_logit.get_weights())
    distilled = keras.models.clone_model(p_logit)
    distilled.set_weights(p_logit.get_weights())
    for m in (p_soft, p_logit):
        fit(m, data, epochs=1, batch_size=64, patience=None)
    after = acc(p_logit)
    assert after > before + 0.15, (before, after)  # measured: 0.34 → 0.71
    assert after == pytest.approx(acc(p_soft), abs=0.01)
    # negative control: the softmax loss on logits (what edgeprune did before) recovers far less
    fit(wrong, data, epochs=1, batch_size=64, patience=None, output=PROBABILITIES)
    assert acc(wrong) < after - 0.08, (acc(wrong), after)  # measured: 0.54 vs 0.71
    fit(distilled, data, epochs=1, batch_size=64, patience=None, teacher=logit, temperature=4.0, alpha=0.7)
    assert acc(distilled) > before + 0.15
    q = quantize_qat(p_logit)
    assert fit(q, data, epochs=1, batch_size=64, learning_rate=1e-4, patience=None).output_kind == LOGITS
    assert acc(q) > after - 0.03
