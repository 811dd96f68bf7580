"""Bad inputs to read_model/save_model fail as one clear line, name the file/layer/key, write nothing."""
import json
import zipfile

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError, ModelLoadError
from edgeprune.keras import keras as tfk
from edgeprune.modelio import from_keras3, read_model, save_model, to_keras3
from edgeprune.modelio.rules import KeyRule, RuleError


@pytest.fixture(scope="module")
def good_keras3(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("good") / "good.keras"
    keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)]).save(path)
    return path


def assert_one_line(err, *needles):
    text = str(err.value)
    assert "\n" not in text and err.value.fix
    for needle in needles:
        assert needle in text, text


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "nope.keras")
    assert_one_line(err, "nope.keras", "does not exist")


def test_empty_file(tmp_path):
    (tmp_path / "e.keras").write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "e.keras")
    assert_one_line(err, "e.keras", "empty")


def test_truncated_keras_zip(tmp_path, good_keras3):
    data = good_keras3.read_bytes()
    (tmp_path / "t.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "t.keras")
    assert_one_line(err, "t.keras", "truncated or corrupt")


def test_zip_that_is_not_a_model(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.keras", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "z.keras")
    assert_one_line(err, "z.keras", "not a Keras model")


def test_random_bytes(tmp_path):
    (tmp_path / "r.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "r.h5")
    assert_one_line(err, "r.h5", "not a Keras model")


def test_exported_savedmodel_without_keras_graph(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "saved_model.pb").write_bytes(b"\x08\x01")  # what model.export() leaves: no keras_metadata.pb
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "exp")
    assert_one_line(err, "no Keras graph", "model.save('model.keras')")


def test_keras3_custom_layer_named(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="userpkg")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    model = keras.Sequential([keras.Input((4,)), Twice(name="twice"), keras.layers.Dense(2)])
    model.save(tmp_path / "c.keras")
    # In the user's process the class is registered, so Keras 3 loads it; the rebuild then refuses it.
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "c.keras")
    assert_one_line(err, "Twice")
    with pytest.raises(ModelLoadError) as err:
        from_keras3(model)
    assert_one_line(err, "twice", "Twice", "custom")


def test_unknown_custom_class_in_file(tmp_path, good_keras3):
    """A file whose class is not registered here: Keras 3 cannot load it; the message names it."""
    with zipfile.ZipFile(good_keras3) as src, zipfile.ZipFile(tmp_path / "u.keras", "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "config.json":
                cfg = json.loads(data)
                layer = cfg["config"]["layers"][-1]
                layer.update(module="userpkg.layers", class_name="FancyDense", registered_name="userpkg>FancyDense")
                data = json.dumps(cfg)
            dst.writestr(item, data)
    with pytest.raises(ModelLoadError) as err:
        read_model(tmp_path / "u.keras")
    assert_one_line(err, "u.keras", "FancyDense", "custom_objects")


def test_save_failure_writes_nothing(tmp_path):
    class Doubler(tfk.layers.Layer):
        def call(self, x):
            return 2 * x

    inp = tfk.Input((4,))
    model = tfk.Model(inp, tfk.layers.Dense(2)(Doubler(name="dbl")(inp)))
    with pytest.raises(EdgepruneError) as err:
        save_model(model, tmp_path / "out.keras")
    assert_one_line(err, "dbl", "Doubler")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_bad_flavor_and_suffix(tmp_path):
    model = tfk.Sequential([tfk.Input((4,)), tfk.layers.Dense(2)])
    for kwargs, needle in [({"path": tmp_path / "m.keras", "flavor": "keras4"}, "flavor"),
                           ({"path": tmp_path / "m.onnx"}, "m.onnx"),
                           ({"path": tmp_path / "sm"}, "SavedModel")]:
        with pytest.raises(EdgepruneError) as err:
            save_model(model, **kwargs)
        assert_one_line(err, needle)
    assert list(tmp_path.iterdir()) == []


def test_config_value_without_equivalent_names_layer_and_key():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.LayerNormalization(rms_scaling=True, name="ln")])
    with pytest.raises(ModelLoadError) as err:
        from_keras3(model)
    assert_one_line(err, "ln", "LayerNormalization", "rms_scaling")


def test_layer_class_missing_in_target_is_named():
    import keras

    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.AdaptiveAveragePooling2D(2, name="ap")])
    with pytest.raises(ModelLoadError) as err:
        from_keras3(model)
    assert_one_line(err, "ap", "AdaptiveAveragePooling2D", "no 'AdaptiveAveragePooling2D'")


def test_key_rule_drops_only_neutral_values():
    rule = KeyRule("Dense", "quantization_config", drop_if=(None,))
    cfg = {"quantization_config": None, "units": 3}
    rule.apply(cfg)
    assert cfg == {"units": 3}
    with pytest.raises(RuleError, match="quantization_config"):
        rule.apply({"quantization_config": {"mode": "int8"}})
    rename = KeyRule("*", "batch_shape", rename="batch_input_shape")
    cfg = {"batch_shape": [None, 4]}
    rename.apply(cfg)
    assert cfg == {"batch_input_shape": [None, 4]} and rename.applies("AnyLayer")


@pytest.mark.parametrize("act", ["hard_sigmoid", "hard_swish", "relu6", "leaky_relu", "silu"])
def test_keras3_activations_tf_keras_lacks_are_rebuilt_exactly(act):
    import keras

    x = np.linspace(-8, 8, 64, dtype="float32").reshape(1, 64)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Activation(act)])
    got = np.asarray(from_keras3(model)(x))
    assert np.abs(np.asarray(model(x)) - got).max() <= 1e-6


def test_tf_keras_hard_sigmoid_keeps_its_own_definition():
    """tf-keras hard_sigmoid is clip(0.2x+0.5); Keras 3's is relu6(x+3)/6: carried by meaning, not name."""
    x = np.linspace(-8, 8, 64, dtype="float32").reshape(1, 64)
    model = tfk.Sequential([tfk.Input((64,)), tfk.layers.Dense(64, activation="hard_sigmoid")])
    k3 = to_keras3(model)
    assert np.abs(np.asarray(model(x)) - np.asarray(k3(x))).max() <= 1e-6


def test_grouped_and_transposed_convs_carry_both_ways():
    """Rules match exact classes: DepthwiseConv2D's `groups` edit must not fire on a grouped Conv2D, and
    tf-keras' `groups: 1` on Conv2DTranspose (which Keras 3 rejects) is dropped."""
    import keras

    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, groups=2, name="grouped"),
                              L.Conv2DTranspose(6, 3, name="tconv"), L.DepthwiseConv2D(3, name="dw")])
    x = np.random.default_rng(0).random((2, 8, 8, 4)).astype("float32")
    tf_model = from_keras3(model)
    assert tf_model.get_layer("grouped").groups == 2
    back = to_keras3(tf_model)
    assert back.get_layer("grouped").groups == 2
    assert np.abs(np.asarray(model(x)) - np.asarray(back(x))).max() <= 1e-5


def test_rejected_config_key_is_named_and_never_points_at_the_source(monkeypatch):
    from edgeprune.pruning.rules import RULES

    monkeypatch.setattr(RULES["Conv2DTranspose"], "to_keras3", ())   # as if the rule lacked its edit
    model = tfk.Sequential([tfk.Input((8, 8, 4)), tfk.layers.Conv2DTranspose(6, 3, name="tconv")])
    with pytest.raises(EdgepruneError) as err:
        to_keras3(model)
    msg = str(err.value)
    assert "'tconv'" in msg and "key 'groups'=1" in msg and ".py" not in msg and "\n" not in msg
