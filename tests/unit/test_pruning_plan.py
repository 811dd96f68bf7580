"""Ratios, rounding, overrides, global pruning, and plans that replay on a fresh model."""
import json

import numpy as np
import pytest

from edgeprune import zoo
from edgeprune.errors import EdgepruneError
from edgeprune.pruning import PrunePlan, analyse, apply_plan, model_stats, prune
from helpers.pruning import randomize_batchnorm

X = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")


@pytest.fixture(scope="module")
def resnet8():
    return randomize_batchnorm(zoo.build("resnet8"))


def test_plan_roundtrip_and_replay_on_fresh_model(resnet8, tmp_path):
    pruned, plan = prune(resnet8, 0.4)
    path = plan.save(tmp_path / "plan.json")
    loaded = PrunePlan.load(path)
    assert json.loads(path.read_text())["removed"] == plan.removed
    fresh = zoo.build("resnet8")
    fresh.set_weights(resnet8.get_weights())
    replayed = apply_plan(fresh, loaded)
    np.testing.assert_allclose(replayed.predict(X, verbose=0), pruned.predict(X, verbose=0), atol=1e-6)


def test_plan_refuses_another_model(resnet8):
    _, plan = prune(resnet8, 0.4)
    with pytest.raises(EdgepruneError, match="another model"):
        apply_plan(zoo.build("dscnn"), plan)


def test_round_to_keeps_multiples(resnet8):
    pruned, plan = prune(resnet8, 0.3, round_to=8)
    for g in plan.groups:
        if g["prunable"] and g["kept"] != g["channels"]:
            assert g["kept"] % 8 == 0


def test_min_channels_and_overrides(resnet8):
    pruned, plan = prune(resnet8, 0.5, overrides={"block3.*": 0.0}, min_channels=12)
    assert pruned.get_layer("block3a_conv").filters == 64
    assert pruned.get_layer("block1a_conv").filters >= 12


def test_first_layer_protected_when_asked(resnet8):
    pruned, _ = prune(resnet8, 0.5, protect_first=True)  # even though the stem is in the residual trunk's group
    assert pruned.get_layer("stem_conv").filters == 16
    pruned, _ = prune(resnet8, 0.5, protect_first=False)
    assert pruned.get_layer("stem_conv").filters == 8


def test_global_pruning_removes_the_requested_share(resnet8):
    an = analyse(resnet8, protect=["stem_conv"])
    total = sum(g.size for g in an.groups if g.prunable)
    _, plan = prune(resnet8, 0.5, global_pruning=True, protect_first=True)
    assert abs(plan.removed_channels - 0.5 * total) <= 1
    sizes = {tuple(g["sources"]): g["kept"] / g["channels"] for g in plan.groups if g["prunable"]}
    assert len(set(round(v, 3) for v in sizes.values())) > 1, "global pruning should give groups different ratios"


def test_low_l1_channels_go_first():
    m = zoo.build("lenet5")
    w = m.get_layer("conv2").get_weights()
    w[0][..., [3, 7, 11]] *= 1e-3
    m.get_layer("conv2").set_weights(w)
    _, plan = prune(m, 0.06, criterion="l1")
    assert set(plan.removed["conv2"]) == {3, 7, 11}


def test_bad_ratio_is_refused(resnet8):
    with pytest.raises(EdgepruneError, match="ratio"):
        prune(resnet8, 1.5)


def _with_opaque_layer():
    """A layer the engine has no rule for: it can only be pruned around when protected."""
    from edgeprune.keras import keras, layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="x")
    x = layers.Conv2D(8, 3, name="c1")(inp)
    x = layers.Permute((2, 1, 3), name="swap")(x)  # no rule for Permute
    x = layers.Conv2D(8, 3, name="c2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, layers.Dense(3, name="out")(x), name="opaque")


def test_both_replay_paths_use_the_plans_protect():
    """prune(plan=...) replays like apply_plan: with the plan's protect list, not this call's."""
    pruned, plan = prune(_with_opaque_layer(), 0.5, protect=["swap"])
    assert "swap" in plan.settings["protect"]
    via_prune, _ = prune(_with_opaque_layer(), plan=plan)  # no protect given here
    via_apply = apply_plan(_with_opaque_layer(), plan)
    assert model_stats(via_prune)["params"] == model_stats(via_apply)["params"] == model_stats(pruned)["params"]
