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


def conv2d(K):
    """2-D convolutions, activations, dropouts, poolings, paddings, merges, shared and grouped layers."""
    L = K.layers
    inp = K.Input((16, 16, 3), name="img")
    x = L.Rescaling(1 / 2, offset=-0.5, name="rescale")(inp)
    x = L.Conv2D(12, 3, padding="same", name="stem")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.LeakyReLU(name="leaky")(x)
    x = L.ELU(name="elu")(x)
    if hasattr(L, "ThresholdedReLU"):
        x = L.ThresholdedReLU(theta=0.0, name="thr")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Cropping2D(1, name="crop")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(12, 3, padding="same", groups=12, name="dwlike")(x)
    x = L.SeparableConv2D(12, 3, padding="same", name="sep")(x)
    for name, cls in [("drop", L.Dropout), ("sdrop", L.SpatialDropout2D), ("gdrop", L.GaussianDropout),
                      ("adrop", L.AlphaDropout)]:
        x = cls(0.1, name=name)(x)
    x = L.GaussianNoise(0.1, name="noise")(x)
    x = L.ActivityRegularization(name="actreg")(x)
    x = L.Identity(name="ident")(x)
    x = L.Activation("relu", name="act")(x)
    x = L.MaxPooling2D(2, name="maxpool")(x)
    x = L.UpSampling2D(2, name="up")(x)
    x = L.AveragePooling2D(2, name="avgpool")(x)          # (8, 8, 12)
    x = L.Rescaling(0.5, name="rescale_mid")(x)
    x = L.Normalization(mean=np.linspace(-1, 1, 12), variance=np.linspace(0.5, 2, 12), name="norm")(x)
    shared = L.Conv2D(8, 1, name="shared")               # called twice: both inputs share its channels
    a, b = shared(x), shared(L.Conv2D(12, 1, name="pre_b")(x))
    merged = [L.Add(name="add")([a, b]), L.Subtract(name="sub")([a, b]), L.Multiply(name="mul")([a, b]),
              L.Average(name="avg")([a, b]), L.Maximum(name="max")([a, b]), L.Minimum(name="min")([a, b])]
    c = L.Concatenate(name="cat")(merged)                  # (8, 8, 48)
    rows = L.Concatenate(axis=1, name="cat_rows")([a, L.Conv2D(8, 1, name="c_rows")(x)])  # (16, 8, 8)
    g = L.Conv2D(8, 3, padding="same", groups=2, name="grouped")(L.Conv2D(8, 1, name="pre_g")(x))
    t = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="tconv")(c)
    s = L.Softmax(name="chan_softmax")(L.Conv2D(4, 1, name="pre_softmax")(x))
    s = L.LayerNormalization(name="ln")(L.Conv2D(4, 1, name="pre_ln")(s))
    heads = [L.GlobalMaxPooling2D(name="gmp")(t), L.GlobalAveragePooling2D(name="gap")(rows),
             L.GlobalAveragePooling2D(name="gap_g")(g), L.GlobalAveragePooling2D(name="gap_s")(s)]
    h = L.Dense(16, activation="relu", name="fc")(L.Concatenate(name="cat_heads")(heads))
    return K.Model(inp, L.Dense(5, activation="softmax", name="out")(h), name="conv2d")


def conv1d(K):
    L = K.layers
    inp = K.Input((24, 3), name="seq")
    x = L.Conv1D(8, 3, name="c1")(inp)
    x = L.ZeroPadding1D(1, name="pad")(x)
    x = L.Cropping1D(1, name="crop")(x)
    x = L.SpatialDropout1D(0.1, name="sdrop")(x)
    x = L.MaxPooling1D(2, name="maxpool")(x)
    x = L.UpSampling1D(2, name="up")(x)
    x = L.AveragePooling1D(2, name="avgpool")(x)
    x = L.DepthwiseConv1D(3, padding="same", name="dw")(x)
    x = L.SeparableConv1D(8, 3, padding="same", name="sep")(x)
    x = L.Conv1DTranspose(8, 3, strides=2, padding="same", name="tconv")(x)
    heads = [L.GlobalMaxPooling1D(name="gmp")(x), L.GlobalAveragePooling1D(name="gap")(x)]
    v = L.RepeatVector(3, name="repeat")(L.Dense(6, name="fc")(L.Concatenate(name="cat")(heads)))
    return K.Model(inp, L.Dense(4, name="out")(L.Flatten(name="flat")(v)), name="conv1d")


def conv3d(K):
    L = K.layers
    inp = K.Input((6, 6, 6, 2), name="vol")
    x = L.Conv3D(8, 3, padding="same", name="c3")(inp)
    x = L.ZeroPadding3D(1, name="pad")(x)
    x = L.Cropping3D(1, name="crop")(x)
    x = L.SpatialDropout3D(0.1, name="sdrop")(x)
    x = L.MaxPooling3D(2, name="maxpool")(x)
    x = L.UpSampling3D(2, name="up")(x)
    x = L.AveragePooling3D(2, name="avgpool")(x)
    x = L.Conv3DTranspose(8, 3, strides=2, padding="same", name="tconv")(x)
    heads = [L.GlobalMaxPooling3D(name="gmp")(x), L.GlobalAveragePooling3D(name="gap")(x)]
    return K.Model(inp, L.Dense(4, name="out")(L.Concatenate(name="cat")(heads)), name="conv3d")


def recurrent(K):
    """Token ids -> embedding -> LSTM/GRU/bidirectional SimpleRNN and LSTM; an EinsumDense side branch."""
    L = K.layers
    inp = K.Input((10,), dtype="int32", name="tokens")
    e = L.Embedding(50, 8, name="emb")(inp)
    x = L.LSTM(8, return_sequences=True, name="lstm")(e)
    x = L.GRU(8, return_sequences=True, name="gru")(x)
    x = L.Bidirectional(L.SimpleRNN(6, return_sequences=True), name="birnn")(x)
    x = L.Bidirectional(L.LSTM(6), merge_mode="sum", name="bilstm")(x)
    side = L.EinsumDense("abc,cd->abd", output_shape=(10, 4), name="einsum")(L.Dense(6, name="pre_einsum")(e))
    side = L.GlobalAveragePooling1D(name="gap")(side)
    h = L.Concatenate(name="cat")([x, side])
    return K.Model(inp, L.Dense(3, name="out")(h), name="recurrent")


def shapes(K):
    """Reshape and Permute that keep the channel axis, Flatten."""
    L = K.layers
    inp = K.Input((16, 16, 3), name="img")
    x = L.Conv2D(8, 3, name="conv")(inp)                      # (14, 14, 8)
    x = L.Reshape((14, 14 * 8), name="merge_w_c")(x)
    x = L.Conv1D(6, 3, name="c1d")(x)                          # (12, 6)
    x = L.Reshape((12, 1, 6), name="add_unit_axis")(x)
    x = L.Permute((2, 1, 3), name="swap_rows")(x)
    x = L.Flatten(name="flat")(x)
    return K.Model(inp, L.Dense(3, name="out")(x), name="shapes")


def tf_keras_only(K):
    """Layers only tf-keras has (pruned, not carried: Keras 3 could not load them anyway)."""
    L = K.layers
    inp = K.Input((8, 8, 3), name="img")
    x = L.ThresholdedReLU(theta=0.1, name="thr")(L.Conv2D(8, 3, name="conv")(inp))
    x = L.ReLU(6.0, name="relu6")(x + 3.0) * (1 / 6)              # TFOpLambda ops (hard-sigmoid style)
    return K.Model(inp, L.Dense(3, name="out")(L.GlobalAveragePooling2D(name="gap")(x)), name="tf_keras_only")


FIXTURES = {f.__name__: f for f in (conv2d, conv1d, conv3d, recurrent, shapes, tf_keras_only)}
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
