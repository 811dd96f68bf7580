"""Every registered layer rule is complete and has a fixture model that prunes through it.

Each fixture is written once for either Keras (K = keras or tf_keras).  Per fixture: build it in
Keras 3 with random weights, carry it to tf-keras (equal outputs), prune it (equivalence with the
zeroed original, a real difference from the unpruned one), carry the pruned model back to
Keras 3 (equal outputs).  The registry test then fails for any rule in ``RULES`` that no fixture
contains, or (for rules that pass channels on) that no fixture prunes through.
"""
from functools import lru_cache

import numpy as np
import pytest

from edgeprune.keras import keras as tfk
from edgeprune.modelio import from_keras3, to_keras3
from edgeprune.pruning import analyse
from edgeprune.pruning.plan import classes_from_plan
from edgeprune.pruning.rules import RULES
from helpers.pruning import prune_and_check
from helpers.rule_fixtures import FIXTURES

TOL = 1e-5


def randomize(model, seed=0):
    """Non-trivial weights everywhere (BN statistics included), so a wrong copy cannot pass."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w, v in zip(layer.weights, layer.get_weights()):
            if v.dtype.kind != "f":
                values.append(v)
                continue
            r = rng.normal(0, 0.3, v.shape).astype(v.dtype)
            values.append(np.abs(r) + 0.5 if "variance" in w.name else r)
        if values:
            layer.set_weights(values)
    return model


TF_KERAS_ONLY = {"tf_keras_only"}


def _inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    shape = (4, *model.input_shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(0, 50, shape).astype("int32")
    return rng.random(shape).astype("float32")


def _close(ref, got):
    ref, got = np.asarray(ref), np.asarray(got)
    assert ref.shape == got.shape
    assert float(np.abs(ref - got).max()) <= TOL * max(1.0, float(np.abs(ref).max()))


@lru_cache(maxsize=None)
def _run(name):
    """(classes in the model, classes whose channels were removed on their input or output)."""
    import keras

    keras.utils.set_random_seed(0)
    tfk.utils.set_random_seed(0)
    if name in TF_KERAS_ONLY:
        model = randomize(FIXTURES[name](tfk))
        x = _inputs(model)
    else:
        k3 = randomize(FIXTURES[name](keras))
        x = _inputs(k3)
        model = from_keras3(k3)
        _close(k3(x), model(x))                            # Keras 3 -> tf-keras
        _close(model(x), to_keras3(model)(x))              # tf-keras -> Keras 3 (the original)
    pruned, plan, *_ = prune_and_check(model, x, protect_first=False)
    if name not in TF_KERAS_ONLY:
        _close(pruned(x), to_keras3(pruned)(x))           # the pruned model carried back to Keras 3
    g = analyse(model, plan.settings["protect"]).graph
    removed = classes_from_plan(g, plan)
    through = set()
    for node in g.nodes:
        keys = node.inputs + node.outputs
        if any(set(g.classes_of(g.atoms_of[k]).tolist()) & removed for k in keys):
            layer = g.layer(node.layer)
            through.add(type(layer).__name__)
            if hasattr(layer, "forward_layer"):
                through.add(type(layer.forward_layer).__name__)
    return _classes(name), through, pruned


def _classes(name) -> set[str]:
    """Layer classes of a fixture (wrapped layers included), built in tf-keras (cheap, no weights run)."""
    model = FIXTURES[name](tfk)
    return {type(l).__name__ for l in model.layers} | {
        type(l.forward_layer).__name__ for l in model.layers if hasattr(l, "forward_layer")} | {"InputLayer"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_prunes_equivalently_and_carries_both_ways(name):
    classes, through, pruned = _run(name)
    assert through, f"fixture {name} removed no channels"
    if name == "conv2d":
        assert pruned.get_layer("grouped").filters == 8 and pruned.get_layer("pre_g").filters == 8
        assert pruned.get_layer("pre_softmax").filters == 4       # softmax over channels pins them
        assert pruned.get_layer("pre_ln").filters == 4            # so does layer normalisation
        assert pruned.get_layer("stem").filters < 12
    if name == "recurrent":
        assert pruned.get_layer("lstm").units < 8 and pruned.get_layer("gru").units < 8
        assert pruned.get_layer("birnn").forward_layer.units < 6
        assert pruned.get_layer("pre_einsum").units == 6          # feeds the kept-intact EinsumDense


@pytest.mark.slow
def test_every_rule_has_a_fixture_that_prunes_through_it():
    pruned_through = set().union(*(_run(name)[1] for name in FIXTURES))
    # rules that pin or keep their channels by design (input, softmax, layer norm) cannot be pruned through
    passes = {n for n, r in RULES.items() if r.prunes_through}
    assert not passes - pruned_through, f"rules no fixture prunes through: {sorted(passes - pruned_through)}"
