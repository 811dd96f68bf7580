"""One test per graph feature: every coupling rule must keep the pruned model equivalent."""
import numpy as np
import pytest

from edgeprune.errors import UnsupportedLayerError
from edgeprune.keras import keras, layers
from edgeprune.pruning import analyse, prune
from helpers.pruning import prune_and_check, randomize_batchnorm

RNG = np.random.default_rng(0)
X = RNG.random((4, 16, 16, 3)).astype("float32")


def _model(build, shape=(16, 16, 3)):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape, name="input")
    return randomize_batchnorm(keras.Model(inp, build(inp)))


def _head(x, n=5):
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(n, name="out")(x)


def test_residual_add_couples_both_branches():
    def build(x):
        x = layers.Conv2D(8, 3, padding="same", name="stem")(x)
        a = layers.Conv2D(8, 3, padding="same", name="branch")(x)
        a = layers.BatchNormalization(name="bn")(a)
        x = layers.Add(name="add")([x, a])
        x = layers.ReLU(name="relu")(x)
        return _head(layers.Conv2D(6, 1, name="after")(x))

    m = _model(build)
    groups = analyse(m).groups
    coupled = [g for g in groups if set(g.sources) == {"stem", "branch"}]
    assert len(coupled) == 1 and coupled[0].size == 8
    assert {"bn", "add", "after"} <= set(coupled[0].members)
    pruned, plan, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("stem").filters == pruned.get_layer("branch").filters == 4


def test_concatenate_offsets_into_consumer():
    def build(x):
        a = layers.Conv2D(6, 3, padding="same", name="a")(x)
        b = layers.Conv2D(10, 3, padding="same", name="b")(x)
        c = layers.Concatenate(name="cat")([a, b])
        return _head(layers.Conv2D(4, 1, name="consumer")(c))

    m = _model(build)
    pruned, plan, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("a").filters == 3 and pruned.get_layer("b").filters == 5
    assert pruned.get_layer("consumer").get_weights()[0].shape[2] == 8


def test_depthwise_chain_and_multiplier():
    def build(x):
        x = layers.Conv2D(8, 1, name="pw0")(x)
        x = layers.DepthwiseConv2D(3, padding="same", name="dw1")(x)
        x = layers.BatchNormalization(name="bn1")(x)
        x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw2")(x)
        return _head(layers.Conv2D(6, 1, name="pw3")(x))

    m = _model(build)
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("dw2").get_weights()[0].shape[2] == pruned.get_layer("pw0").filters
    assert pruned.get_layer("pw3").get_weights()[0].shape[2] == 2 * pruned.get_layer("pw0").filters


def test_separable_conv():
    def build(x):
        x = layers.Conv2D(8, 1, name="c0")(x)
        x = layers.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, name="sep")(x)
        return _head(x)

    m = _model(build)
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("sep").filters == 6


def test_flatten_to_dense_strided_inputs():
    def build(x):
        x = layers.Conv2D(6, 3, name="conv")(x)
        x = layers.MaxPooling2D(2, name="pool")(x)
        x = layers.Flatten(name="flat")(x)
        x = layers.Dense(16, activation="relu", name="fc")(x)
        return layers.Dense(5, name="out")(x)

    m = _model(build)
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("fc").get_weights()[0].shape[0] == 7 * 7 * 3


def test_squeeze_excite_broadcast_multiply_and_reshape():
    def build(x):
        x = layers.Conv2D(8, 3, padding="same", name="conv")(x)
        s = layers.GlobalAveragePooling2D(name="se_gap")(x)
        s = layers.Dense(4, activation="relu", name="se_reduce")(s)
        s = layers.Dense(8, activation="sigmoid", name="se_expand")(s)
        s = layers.Reshape((1, 1, 8), name="se_reshape")(s)
        x = layers.Multiply(name="se_mul")([x, s])
        return _head(x)

    m = _model(build)
    groups = analyse(m).groups
    g = next(g for g in groups if "conv" in g.sources)
    assert "se_expand" in g.sources
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("se_reshape").target_shape == (1, 1, 4)


def test_batchnorm_statistics_follow_channels():
    def build(x):
        x = layers.Conv2D(8, 3, name="conv")(x)
        x = layers.BatchNormalization(name="bn")(x)
        return _head(layers.ReLU()(x))

    m = _model(build)
    pruned, plan, *_ = prune_and_check(m, X, protect_first=False)
    kept = sorted(set(range(8)) - set(plan.removed["conv"]))
    np.testing.assert_array_equal(pruned.get_layer("bn").get_weights()[2], m.get_layer("bn").get_weights()[2][kept])


def test_grouped_conv_is_kept_intact_and_depthwise_style_groups_prune():
    def build(x):
        x = layers.Conv2D(8, 1, name="c0")(x)
        x = layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)
        x = layers.Conv2D(8, 1, name="c2")(x)
        x = layers.Conv2D(8, 3, padding="same", groups=8, name="dwlike")(x)
        return _head(x)

    m = _model(build)
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("grouped").filters == 8          # pinned: both sides intact
    assert pruned.get_layer("c0").filters == 8
    assert pruned.get_layer("dwlike").filters == pruned.get_layer("c2").filters == 4


def test_nested_submodel_is_inlined():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((16, 16, 8))
    y = layers.Conv2D(8, 3, padding="same", name="inner_conv")(inner_in)
    y = layers.BatchNormalization(name="inner_bn")(y)
    inner = keras.Model(inner_in, layers.Add(name="inner_add")([inner_in, y]), name="block")
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = inner(x)
    m = randomize_batchnorm(keras.Model(inp, _head(x)))
    pruned, *_ = prune_and_check(m, X, protect_first=False)
    assert pruned.get_layer("inner_conv").filters == 4


def test_conv1d_sequential():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((20, 3)), layers.Conv1D(8, 3, name="c1"), layers.BatchNormalization(),
                          layers.ReLU(), layers.Conv1D(8, 3, name="c2"), layers.GlobalAveragePooling1D(),
                          layers.Dense(4, name="out")])
    randomize_batchnorm(m)
    x = RNG.random((4, 20, 3)).astype("float32")
    pruned, *_ = prune_and_check(m, x, protect_first=False)
    assert pruned.get_layer("c1").filters == 4


def test_outputs_and_inputs_are_never_pruned():
    def build(x):
        a = layers.Conv2D(8, 3, padding="same", name="conv")(x)
        return layers.Add(name="add")([a, layers.Conv2D(8, 1, name="proj")(x)])

    m = _model(build)
    pruned, plan = prune(m, 0.5, protect_first=False)
    assert plan.removed == {}
    assert pruned.output_shape == m.output_shape


def test_protected_layer_keeps_its_channels():
    def build(x):
        x = layers.Conv2D(8, 3, name="keepme")(x)
        x = layers.Conv2D(8, 3, name="cut")(x)
        return _head(x)

    pruned, plan = prune(_model(build), 0.5, protect=["keep.*"], protect_first=False)
    assert pruned.get_layer("keepme").filters == 8 and pruned.get_layer("cut").filters == 4


def test_unsupported_layer_is_a_hard_stop_naming_it_with_strict():
    inp = keras.Input((10, 4))
    x = layers.Dense(8, name="d0")(inp)
    x = layers.UnitNormalization(name="unorm")(x)   # mixes every channel of a position: no rule
    x = layers.Dense(6, name="d1")(x)
    m = keras.Model(inp, layers.Dense(3, name="out")(x))
    with pytest.raises(UnsupportedLayerError, match="'unorm' of type UnitNormalization"):
        prune(m, 0.5, strict=True)
    # protected, its group stays intact and the rest still prunes
    pruned, plan = prune(m, 0.5, protect=["unorm"], protect_first=False)
    assert pruned.get_layer("d1").units == 3
    assert pruned.get_layer("d0").units == 8  # feeds the protected layer
    assert not [n for n in plan.kept if n["kind"] == "unsupported"]
    # without --strict the same happens, and a note names the layer and the group it keeps
    pruned, plan = prune(m, 0.5, protect_first=False)
    assert pruned.get_layer("d0").units == 8 and pruned.get_layer("d1").units == 3
    note, = [n for n in plan.kept if n["kind"] == "unsupported"]
    assert note["layers"] == ["unorm"] and note["sources"] == ["d0"] and 0 < note["macs_share"] < 1
    assert "'unorm'" in note["message"] and "--strict" in note["message"]


def test_reshape_that_moves_channels_is_refused_with_strict_and_kept_without():
    def build(x):
        x = layers.Conv2D(8, 3, name="conv")(x)
        x = layers.Reshape((8, 14 * 14), name="weird")(x)   # the channel axis becomes a row axis
        return layers.Dense(3, name="out")(x)

    with pytest.raises(UnsupportedLayerError, match="weird"):
        prune(_model(build), 0.5, strict=True, protect_first=False)
    pruned, plan = prune(_model(build), 0.5, protect_first=False)
    assert pruned.get_layer("conv").filters == 8
    assert [n["layers"] for n in plan.kept if n["kind"] == "unsupported"] == [["weird"]]
    # --protect works for a layer that has a rule, too: no note, same result
    pruned, plan = prune(_model(build), 0.5, protect=["weird"], protect_first=False)
    assert pruned.get_layer("conv").filters == 8 and not [n for n in plan.kept if n["kind"] == "unsupported"]


def test_reshapes_that_keep_the_channel_axis_pass_channels_through():
    def build(x):
        x = layers.Conv2D(8, 3, name="conv")(x)                     # (14, 14, 8)
        x = layers.Reshape((14, 14 * 8), name="merge_w_c")(x)      # W and C merged, C innermost
        x = layers.Conv1D(6, 3, name="c1d")(x)                      # (12, 6)
        x = layers.Reshape((12, 1, 6), name="add_unit_axis")(x)
        x = layers.Permute((2, 1, 3), name="swap_rows")(x)          # channel axis stays last
        x = layers.Reshape((12, 6), name="drop_unit_axis")(x)
        x = layers.GlobalAveragePooling1D(name="gap")(x)
        x = layers.Reshape((1, 1, 6), name="to_map")(x)             # (C,) -> (1, 1, C)
        x = layers.Conv2D(4, 1, name="pw")(x)
        return layers.Dense(3, name="out")(layers.Flatten(name="flat")(x))

    m = _model(build)
    pruned, plan, *_ = prune_and_check(m, X, protect_first=False)
    assert not plan.kept or all(n["kind"] != "unsupported" for n in plan.kept)
    assert pruned.get_layer("conv").filters == 4 and pruned.get_layer("c1d").filters == 3
    assert pruned.get_layer("merge_w_c").target_shape == (14, 14 * 4)
    assert pruned.get_layer("to_map").target_shape == (1, 1, 3)


def _se_resnet(x):
    """Stem, two residual blocks with squeeze-excite gates on one trunk, a classifier."""
    x = layers.Conv2D(16, 3, padding="same", name="stem")(x)
    for i in range(2):
        y = layers.Conv2D(16, 3, padding="same", activation="relu", name=f"b{i}_c1")(x)
        y = layers.Conv2D(16, 3, padding="same", name=f"b{i}_c2")(y)
        s = layers.GlobalAveragePooling2D(name=f"b{i}_gap")(y)
        s = layers.Dense(4, activation="relu", name=f"b{i}_se1")(s)
        s = layers.Reshape((1, 1, 16), name=f"b{i}_se_shape")(layers.Dense(16, activation="sigmoid", name=f"b{i}_se2")(s))
        x = layers.Add(name=f"b{i}_add")([x, layers.Multiply(name=f"b{i}_se_mul")([y, s])])
    return _head(x)


def test_protection_pinning_a_third_of_the_macs_is_named_with_the_option_that_frees_it():
    m = _model(_se_resnet)
    pruned, plan = prune(m, 0.5, protect_first=True)   # pins the stem, and with it the whole residual trunk
    note, = [n for n in plan.kept if n["kind"] == "protect_first"]
    assert note["layers"] == ["stem"] and note["macs_share"] > 1 / 3 and note["option"] == "--no-protect-first"
    assert "--no-protect-first" in note["message"] and "stem" in note["message"]
    assert pruned.get_layer("b0_c2").filters == 16
    pruned, plan, *_ = prune_and_check(m, X, protect_first=False)
    assert not [n for n in plan.kept if n["kind"] == "protect_first"]
    assert pruned.get_layer("b0_c2").filters == pruned.get_layer("stem").filters == 8
    assert pruned.get_layer("b0_se_shape").target_shape == (1, 1, 8)


def _small_resnet(x):
    """The first conv feeds the residual trunk: a wide stem, one cheap bottleneck block, a classifier."""
    x = layers.Conv2D(16, 3, padding="same", name="stem")(x)
    y = layers.Conv2D(4, 1, activation="relu", name="c1")(x)
    y = layers.Conv2D(16, 1, name="c2")(y)
    return _head(layers.Add(name="add")([x, y]))


def test_by_default_a_first_conv_in_the_residual_trunk_is_pruned_with_it_and_the_plan_says_so():
    m = _model(_small_resnet)
    pruned, plan, before, after = prune_and_check(m, X, ratio=0.3)
    assert pruned.get_layer("stem").filters == pruned.get_layer("c2").filters < 16  # the trunk shrank
    assert after["macs"] < 0.8 * before["macs"]
    first = plan.settings["first_layer"]
    assert first["layer"] == "stem" and not first["protected"] and first["shared_with"] == ["c2"]
    assert "'stem' left prunable" in first["message"] and "--protect-first" in first["message"]
    assert not plan.settings["protect_first"] and "stem" not in plan.settings["protect"]

    pruned, plan = prune(m, 0.3, protect_first=True)  # asked for: today's meaning, the trunk stays whole
    assert pruned.get_layer("stem").filters == pruned.get_layer("c2").filters == 16
    assert pruned.get_layer("c1").filters < 4 and plan.settings["first_layer"] is None
    assert plan.settings["protect_first"] and "stem" in plan.settings["protect"]


def test_by_default_a_first_conv_with_a_group_of_its_own_stays_and_an_only_group_is_pruned():
    def plain(x):
        x = layers.Conv2D(8, 3, name="c1")(x)
        return _head(layers.Conv2D(8, 3, name="c2")(x))

    pruned, plan = prune(_model(plain), 0.5)
    assert pruned.get_layer("c1").filters == 8 and pruned.get_layer("c2").filters == 4
    assert plan.settings["first_layer"]["protected"] and plan.settings["protect_first"]

    inp = keras.Input((10, 4))
    lstm = keras.Model(inp, layers.Dense(3, name="out")(layers.LSTM(8, name="lstm")(inp)))
    pruned, plan = prune(lstm, 0.3)  # protecting the LSTM would leave nothing to prune
    assert pruned.get_layer("lstm").units < 8 and plan.settings["first_layer"]["reason"] == "only_group"


def test_the_printed_pinned_share_is_the_share_of_prunable_macs_protection_holds(tmp_path, capsys):
    from edgeprune.cli import run_command
    from edgeprune.pruning import model_stats

    m = _model(_small_resnet)
    m.save(tmp_path / "m.keras")
    assert run_command(["prune", str(tmp_path / "m.keras"), "--ratio", "0.3", "--protect-first",
                        "-o", str(tmp_path / "p.keras")]) == 0
    out, err = capsys.readouterr()
    macs = {r["name"]: r["macs"] for r in model_stats(m)["layers"]}
    after = model_stats(keras.models.load_model(tmp_path / "p.keras"))["macs"]
    total_macs = model_stats(m)["macs"]  # the reduction, as the report writes it (not the share kept)
    assert f"MACs {total_macs:,} → {after:,} (−{(1 - after / total_macs) * 100:.1f}%)" in out, out
    # the stem's output is the trunk, all pinned; c1 reads it and c2 writes it, each with a prunable other
    # side (half pinned); the classifier reads the trunk (half: its outputs are pinned by another cause)
    pinned = macs["stem"] + (macs["c1"] + macs["c2"] + macs["out"]) / 2
    share = pinned / sum(macs[n] for n in ("stem", "c1", "c2", "out"))
    assert 0.34 < share < 0.99  # not the 100% every layer touching the trunk would make
    assert f"pinning {share:.0%} of the prunable MACs — --no-protect-first" in err, err


def test_recurrent_macs_are_counted():
    from edgeprune.pruning import model_stats

    inp = keras.Input((10, 4))
    x = layers.LSTM(6, return_sequences=True, name="lstm")(inp)
    x = layers.Bidirectional(layers.GRU(5), name="bigru")(x)
    stats = model_stats(keras.Model(inp, layers.Dense(3, name="out")(x)))
    macs = {r["name"]: r["macs"] for r in stats["layers"]}
    assert macs["lstm"] == 10 * 4 * 6 * (4 + 6)
    assert macs["bigru"] == 2 * 10 * 3 * 5 * (6 + 5)
    assert stats["macs"] == macs["lstm"] + macs["bigru"] + 10 * 3
