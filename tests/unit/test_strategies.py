"""Schedules, distillation fine-tuning, sensitivity, sparsity training and input-feature pruning on real slices."""

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.strategies.schedule import cumulative_ratio
from edgeprune.strategies.sensitivity import SensitivityResult, sensitivity_allocation, sensitivity_overrides


def test_schedule_fractions():
    assert [cumulative_ratio(i, 4, 0.6) for i in range(5)] == pytest.approx([0, 0.15, 0.3, 0.45, 0.6])
    poly = [cumulative_ratio(i, 4, 0.6, "polynomial") for i in range(5)]
    assert poly[-1] == pytest.approx(0.6) and poly[1] > 0.15  # front-loaded
    with pytest.raises(EdgepruneError, match="schedule"):
        cumulative_ratio(1, 4, 0.6, "cosine")


def fake_result():
    return SensitivityResult(
        ratios=[0.25, 0.5, 0.75], baseline_val_accuracy=0.90,
        curves={"fragile": [0.60, 0.30, 0.10], "medium": [0.89, 0.85, 0.70], "robust": [0.90, 0.90, 0.88]},
        groups={"fragile": {"sources": ["fragile"], "channels": 16}, "medium": {"sources": ["medium"], "channels": 32},
                "robust": {"sources": ["robust"], "channels": 64}})


def test_allocation_gives_fragile_groups_the_lowest_ratio():
    res = fake_result()
    for target in (0.2, 0.4, 0.6):
        alloc = sensitivity_allocation(res, target)
        assert alloc["fragile"] <= alloc["medium"] <= alloc["robust"] and alloc["fragile"] < alloc["robust"]
        if target >= 0.4:  # below that, the free ratios of the robust group cover the whole target
            assert alloc["fragile"] < alloc["medium"] < alloc["robust"]
        weighted = sum(alloc[k] * res.groups[k]["channels"] for k in alloc) / 112
        assert weighted == pytest.approx(target, abs=1e-6)
    assert sensitivity_allocation(res, 0.0) == {"fragile": 0.0, "medium": 0.0, "robust": 0.0}
    assert set(sensitivity_overrides(res, 0.4)) == {"fragile", "medium", "robust"}
    # beyond the scanned ratios the curves say nothing: uniform
    assert set(sensitivity_allocation(res, 0.8).values()) == {0.8}


def test_channel_scores_written_once_name_the_same_channels_in_a_copy_of_the_model(tmp_path, fashion_small):
    """A scan scores the model once and its trials read the scores: on a copy loaded from a file they name
    the same classes, and the cut is the one scoring the copy itself would choose."""
    import json

    import numpy as np

    from edgeprune import zoo
    from edgeprune.keras import keras
    from edgeprune.pruning import analyse, prune
    from edgeprune.pruning.importance import compute_scores, scores_by_channel, scores_from_channels

    keras.utils.set_random_seed(0)
    model = zoo.build("resnet8")
    data = fashion_small.subset(train=64, val=32, test=8)
    g = analyse(model).graph
    scores = compute_scores(g, "taylor", dataset=data, seed=0)
    saved = json.loads(json.dumps(scores_by_channel(g, scores)))
    model.save(tmp_path / "m.keras")
    copy = keras.models.load_model(tmp_path / "m.keras")
    assert scores_from_channels(analyse(copy).graph, saved) == scores
    a, plan_a = prune(copy, 0.4, criterion="taylor", dataset=data, seed=0)
    b, plan_b = prune(copy, 0.4, criterion="taylor", dataset=data, seed=0, channel_scores=saved)
    assert [grp["kept"] for grp in plan_a.groups] == [grp["kept"] for grp in plan_b.groups]
    assert plan_a.removed_channels == plan_b.removed_channels > 0
    x = data.x_val[:4]
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
    with pytest.raises(EdgepruneError, match="does not have"):
        scores_from_channels(g, {"no_such_layer:0": 1.0})
