"""The equivalence check can fail: a deliberately broken surgery is caught, even on untrained models
whose softmax outputs do not move; its summary lands in plan.json; weak checks say so."""
import json

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras, layers
from edgeprune.prune_cli import prune_file
from edgeprune.pruning import prune, verify_pruning


def _trunk():
    """(input, pooled features) of two untrained convs (Keras' default initialisers, seeded)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = layers.Conv2D(8, 3, activation="relu", name="c2")(x)
    return inp, layers.GlobalAveragePooling2D()(x)


def tiny_classifier():
    """Untrained, softmax output."""
    inp, x = _trunk()
    return keras.Model(inp, layers.Dense(4, activation="softmax", name="out")(x))


X = np.random.default_rng(0).random((8, 12, 12, 3)).astype("float32")


def test_verify_passes_a_correct_surgery_and_reports_logits():
    model = tiny_classifier()
    pruned, plan = prune(model, 0.5, protect_first=False)
    summary = verify_pruning(model, pruned, plan, X, inputs="random inputs")
    assert summary["passed"] and summary["compared"] == "pre-activation outputs (logits)"
    assert summary["relative_diff"] <= 1e-4 and not summary["weak"] and plan.verify is summary


def test_verify_fails_on_a_broken_surgery_of_an_untrained_model(broken_conv_surgery):
    model = tiny_classifier()
    pruned, plan = prune(model, 0.5, protect_first=False)
    with pytest.raises(EdgepruneError, match="differs from the zeroed original"):
        verify_pruning(model, pruned, plan, X)
    assert plan.verify["passed"] is False


def test_cli_verify_fails_and_writes_nothing(tmp_path, broken_conv_surgery):
    src, out = tmp_path / "m.keras", tmp_path / "pruned.keras"
    tiny_classifier().save(src)
    with pytest.raises(EdgepruneError, match="differs from the zeroed original"):
        prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                   protect=[], protect_first=False, data=None, plan_path=None, plan_out=tmp_path / "plan.json",
                   verify=True)
    assert not out.exists() and not (tmp_path / "plan.json").exists()


def test_cli_verify_summary_lands_in_plan_json(tmp_path, capsys):
    src, out, plan_path = tmp_path / "m.keras", tmp_path / "pruned.keras", tmp_path / "plan.json"
    tiny_classifier().save(src)
    result = prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                        protect=[], protect_first=False, data=None, plan_path=None, plan_out=plan_path, verify=True)
    saved = json.loads(plan_path.read_text())["verify"]
    assert saved["passed"] and saved == result["verify"] and saved["inputs"].startswith("random inputs")
    assert "logits" in capsys.readouterr().out


def test_outputs_that_ignore_the_input_make_a_weak_check():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = layers.Rescaling(0.0, offset=1.0, name="constant")(inp)     # the input no longer matters
    x = layers.Conv2D(8, 3, name="c1")(x)
    x = layers.Conv2D(8, 3, name="c2")(x)
    model = keras.Model(inp, layers.Dense(4, name="out")(layers.GlobalAveragePooling2D()(x)))
    pruned, plan = prune(model, 0.5, protect_first=False)
    summary = verify_pruning(model, pruned, plan, X)
    assert summary["weak"] and "weak" in summary["note"]


def test_tiny_outputs_make_a_weak_check_though_they_depend_on_the_input(tmp_path, capsys):
    """Logits of ~1e-11 (what an untrained Keras MobileNetV3 gives): they vary with the input, so the spread
    test alone passes them, yet they prove little; the warning says why and what to do."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = layers.Conv2D(8, 3, activation="relu", name="c2")(x)
    x = layers.Rescaling(1e-11, name="fade")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, layers.Dense(4, activation="softmax", name="out")(x))
    src, out = tmp_path / "m.keras", tmp_path / "pruned.keras"
    model.save(src)
    result = prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                        protect=[], protect_first=False, data=None, plan_path=None, plan_out=None, verify=True)
    v = result["verify"]
    assert v["passed"] and v["output_scale"] < 1e-9 and v["input_dependence"] > 1e-3  # not flat: tiny
    assert v["weak"] and "tiny" in v["note"] and "--data" in v["note"] and "trained model" in v["note"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "tiny" in err


def two_output_model():
    inp, x = _trunk()
    return keras.Model(inp, [layers.Dense(4, activation="softmax", name="cls")(x), layers.Dense(2, name="box")(x)])


def test_cli_verify_checks_each_output_of_a_two_output_model(tmp_path, capsys):
    src, out = tmp_path / "m.keras", tmp_path / "pruned.keras"
    two_output_model().save(src)
    result = prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                        protect=[], protect_first=False, data=None, plan_path=None, plan_out=None, verify=True)
    v = result["verify"]
    assert out.exists() and v["passed"] and not v["weak"]
    assert [o["output"] for o in v["outputs"]] == ["cls", "box"] and v["worst_output"] in ("cls", "box")
    worst = next(o for o in v["outputs"] if o["output"] == v["worst_output"])
    assert v["relative_diff"] == worst["relative_diff"] == max(o["relative_diff"] for o in v["outputs"])
    assert f"'{v['worst_output']}'" in capsys.readouterr().out


def test_verify_names_the_output_that_differs(broken_conv_surgery):
    model = two_output_model()
    pruned, plan = prune(model, 0.5, protect_first=False)
    with pytest.raises(EdgepruneError, match="differs from the zeroed original .* of output '(cls|box)'"):
        verify_pruning(model, pruned, plan, X)
    assert plan.verify["passed"] is False and not all(o["passed"] for o in plan.verify["outputs"])


def test_cli_verify_of_a_normal_model_gives_no_warning(tmp_path, capsys):
    src, out = tmp_path / "m.keras", tmp_path / "pruned.keras"
    tiny_classifier().save(src)
    result = prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                        protect=[], protect_first=False, data=None, plan_path=None, plan_out=None, verify=True)
    assert result["verify"]["passed"] and not result["verify"]["weak"] and "note" not in result["verify"]
    assert "warning" not in capsys.readouterr().err


def test_cli_verify_of_a_two_output_model_on_data_with_its_scaling(tmp_path, capsys):
    """--data feeds --verify on a two-output model (an l1 prune needs no labels), scaled as its suffix says."""
    src, out, data = tmp_path / "m.keras", tmp_path / "pruned.keras", tmp_path / "d.npz"
    two_output_model().save(src)
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8), y_train=rng.integers(0, 4, 40),
             x_test=rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8), y_test=rng.integers(0, 4, 8))
    result = prune_file(src, out, ratio=0.5, criterion="l1", global_pruning=False, round_to=1, min_channels=1,
                        protect=[], protect_first=False, data=f"{data}:symmetric", plan_path=None, plan_out=None,
                        verify=True)
    v = result["verify"]
    assert v["passed"] and len(v["outputs"]) == 2 and "(scaling: symmetric)" in v["inputs"]
    assert "scaling: symmetric" in capsys.readouterr().out
