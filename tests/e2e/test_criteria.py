"""Importance criteria on a small CNN trained one epoch on real Fashion-MNIST, with planted useless channels."""
import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras, layers
from edgeprune.pruning import prune
from edgeprune.pruning.graph import build_graph
from edgeprune.pruning.importance import compute_scores, criterion_names, outlier_classes, probe_point, class_scores, CRITERIA
from edgeprune.train import fit

ZEROED = [1, 5]        # conv2 filters with all weights and the bias set to 0
DEAD = [9]             # conv2 filter with a very negative bias: its ReLU never fires
FC_ZEROED = [3, 17]


@pytest.fixture(scope="module")
def data(fashion_mnist):
    return fashion_mnist.subset(train=3000, val=512, test=256)


def small_cnn(bn: bool = False):
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    if bn:
        x = layers.Conv2D(16, 3, use_bias=False, name="conv2")(x)
        x = layers.BatchNormalization(name="bn2")(x)
        x = layers.ReLU(name="relu2")(x)
    else:
        x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(4, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="fc")(x)
    x = layers.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inp, x, name="small_cnn")


@pytest.fixture(scope="module")
def planted(data):
    model = small_cnn()
    fit(model, data, epochs=1, batch_size=64, patience=None)
    k, b = model.get_layer("conv2").get_weights()
    k[..., ZEROED] = 0.0
    b[ZEROED] = 0.0
    b[DEAD] = -1e3
    model.get_layer("conv2").set_weights([k, b])
    k, b = model.get_layer("fc").get_weights()
    k[:, FC_ZEROED] = 0.0
    b[FC_ZEROED] = 0.0
    model.get_layer("fc").set_weights([k, b])
    return model


def ranked_first(scores, planted):
    """The planted channels score no higher than any other (naturally dead units may tie at 0)."""
    others = np.delete(scores, planted)
    return scores[planted].max() <= others.min()


def lowest(model, criterion, data, layer, n):
    """Output-channel indices of `layer` with the `n` lowest class scores."""
    g = build_graph(model)
    scores = compute_scores(g, criterion, dataset=data)
    atoms = g.source_atoms[layer]
    per_channel = np.array([scores[g.cls(int(a))] for a in atoms])
    return sorted(np.argsort(per_channel, kind="stable")[:n].tolist()), per_channel


@pytest.mark.parametrize("criterion", ["l1", "l2", "threshold_l1"])
def test_weight_criteria_rank_zeroed_filters_first(planted, data, criterion):
    got, _ = lowest(planted, criterion, data, "conv2", len(ZEROED))
    assert got == ZEROED
    got, _ = lowest(planted, criterion, data, "fc", len(FC_ZEROED))
    assert got == FC_ZEROED


@pytest.mark.parametrize("criterion", ["taylor", "apoz", "mean_activation", "threshold_taylor"])
def test_data_criteria_rank_zeroed_and_dead_channels_first(planted, data, criterion):
    useless = sorted(ZEROED + DEAD)
    got, scores = lowest(planted, criterion, data, "conv2", len(useless))
    assert got == useless
    assert np.all(scores[useless] < 1e-6 * max(scores.max(), 1e-12) + 1e-12)
    _, scores = lowest(planted, criterion, data, "fc", len(FC_ZEROED))
    assert ranked_first(scores, FC_ZEROED)
    assert scores[FC_ZEROED].max() < 1e-6 * scores.max()


def test_magnitude_does_not_see_dead_relu_but_activation_does(planted, data):
    """The planted dead channel has ordinary weights: only data criteria can find it."""
    _, l1 = lowest(planted, "l1", data, "conv2", 1)
    assert l1[DEAD[0]] > np.median(l1) * 0.2
    _, apoz = lowest(planted, "apoz", data, "conv2", 1)
    assert apoz[DEAD[0]] == 0.0


def test_bn_gamma_picks_zero_gamma(data):
    model = small_cnn(bn=True)
    fit(model, data.subset(train=512), epochs=1, batch_size=64, patience=None)
    gamma, beta, mean, var = model.get_layer("bn2").get_weights()
    gamma[[2, 11]] = 0.0
    model.get_layer("bn2").set_weights([gamma, beta, mean, var])
    got, _ = lowest(model, "bn_gamma", data, "conv2", 2)
    assert got == [2, 11]
    # probes sit after the BN and its ReLU: zeroing that tensor is what removing the channel does
    g = build_graph(model)
    assert probe_point(g, "conv2") == (("relu2", 0, 0), True)


def test_prune_with_taylor_removes_planted_channels(planted, data):
    pruned, plan = prune(planted, 0.25, criterion="taylor", dataset=data)
    assert set(ZEROED + DEAD) <= set(plan.removed["conv2"])
    assert pruned.get_layer("conv2").filters == 12


def test_threshold_ranks_outliers_before_every_ordinary_channel(planted, data):
    g = build_graph(planted)
    base = class_scores(g, CRITERIA["l1"](g))
    flagged = outlier_classes(g, base, k=1.0)
    planted_cls = {g.cls(int(g.source_atoms["conv2"][i])) for i in ZEROED}
    assert planted_cls <= flagged
    scores = compute_scores(g, "threshold_l1:k=1.0")
    ordinary = [s for c, s in scores.items() if c not in flagged and c in base]
    assert max(scores[c] for c in flagged) < min(ordinary)
    # with a huge k nothing is an outlier and the scores equal the base criterion's
    assert compute_scores(g, "threshold_l1:k=100") == pytest.approx(compute_scores(g, "l1"))


def test_data_criteria_use_validation_only(planted, data):
    """Poisoned test split: the scores must not change (the test split is never read)."""
    from dataclasses import replace

    poisoned = replace(data, x_test=np.full_like(data.x_test, np.nan))
    _, a = lowest(planted, "taylor", data, "conv2", 1)
    _, b = lowest(planted, "taylor", poisoned, "conv2", 1)
    np.testing.assert_allclose(a, b)


def test_criterion_errors_are_one_line(planted):
    g = build_graph(planted)
    with pytest.raises(EdgepruneError, match="needs data"):
        compute_scores(g, "taylor")
    with pytest.raises(EdgepruneError, match="threshold_l1:k=1.5"):
        compute_scores(g, "threshold_l1:q=2")
    with pytest.raises(EdgepruneError, match="unknown criterion"):
        compute_scores(g, "threshold_nope")
    with pytest.raises(EdgepruneError, match="BatchNormalization"):
        compute_scores(g, "bn_gamma")
    assert {"taylor", "apoz", "mean_activation", "threshold_l1"} <= set(criterion_names())
