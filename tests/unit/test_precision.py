"""Precisions of a TFLite file: float16 halves the bytes within its tolerance; a mixed file runs
exactly the chosen layers in float and everything else in int8 (read from the flatbuffer)."""


def small_cnn():
    """A LeNet-like CNN (conv1 has one input channel) whose last Dense outputs logits; its TFLite op is
    then named after the signature (``StatefulPartitionedCall:0``), not the layer."""
    from edgeprune.keras import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 5, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPool2D(name="pool")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="fc")(x))


# --- which layers stay float on a device -------------------------------------------------------


def test_keep_float_follows_the_per_layer_cost_table():
    from edgeprune.devicecost.precision import choose_keep_float

    deltas = {"conv1": -240_000.0, "conv2": 1_000.0, "fc": -6_000.0, "fc2": -900.0}
    assert choose_keep_float(deltas, int8_cost=480_000) == ["conv1", "fc"]  # fc2 saves < 1%
    assert choose_keep_float(deltas, int8_cost=480_000, min_saving=0.0) == ["conv1", "fc", "fc2"]
    assert choose_keep_float({"conv1": 5.0}, int8_cost=100.0) == []


def test_devices_with_the_same_choice_share_one_mixed_file(monkeypatch):
    from edgeprune.devicecost import precision

    tables = {"a72": {"conv1": -50.0, "conv2": 10.0, "fc": 5.0}, "a76": {"conv1": -30.0, "conv2": 4.0, "fc": 1.0},
              "x86": {"conv1": 3.0, "conv2": 2.0, "fc": 1.0}, "odd": {"conv1": -9.0, "conv2": -9.0, "fc": -9.0}}
    seen = []

    def fake_table(model, device, calibration, **kw):
        seen.append(device)
        return {"metric": "instructions", "int8_cost": 100.0, "float_cost": 90.0, "deltas": tables[device]}

    monkeypatch.setattr(precision, "layer_deltas", fake_table)
    plans = precision.plan_mixed(small_cnn(), list(tables), calibration=None, log=lambda *a: None)
    assert seen == list(tables)
    # x86: int8 everywhere (no mixed file); odd: float everywhere (that is the float32 file)
    assert [(p["keep_float"], p["devices"]) for p in plans] == [(["conv1"], ["a72", "a76"])]
    assert set(plans[0]["tables"]) == {"a72", "a76"}
