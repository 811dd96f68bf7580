"""Carrying models between Keras 3 and tf-keras: load -> equal outputs; save back -> plain Keras of
the original flavor (clean process, no edgeprune, no custom objects) loads it -> equal outputs.

Inputs are real Fashion-MNIST test images.  One clean child process per flavor checks every file.
"""
import numpy as np
import pytest

from edgeprune.keras import keras as tfk
from edgeprune.modelio import LoadedModel, read_model, save_model
from edgeprune.modelio.verify import predict_in_clean_keras
from edgeprune import zoo
from helpers.modelio_checks import assert_close, predict, randomize


# ---- models, written once for either Keras (K = keras or tf_keras) -----------------------------

def kitchen(K, acts=("hard_swish", "relu6", "hard_sigmoid", "silu")):
    """Most layer kinds in one functional graph; `acts` exercises activations one Keras lacks."""
    L = K.layers
    inp = K.Input((28, 28, 1), name="img")
    x = L.Rescaling(2.0, offset=-1.0)(inp)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    d = L.Activation(acts[0])(d)
    s = L.SeparableConv2D(16, 3, padding="same", activation=acts[1])(x)
    a, m, sb = L.Add()([d, s]), L.Multiply()([d, s]), L.Subtract()([d, s])
    av = L.Average()([L.Maximum()([a, m]), L.Minimum()([sb, m])])
    c = L.LayerNormalization()(L.Concatenate()([a, av]))
    c = L.UpSampling2D(2)(L.AveragePooling2D(2)(c))
    c = L.Conv2D(8, 1, activation=acts[2])(c)
    g = L.GlobalAveragePooling2D()(c)
    r = L.Conv1D(4, 3, activation="gelu")(L.Reshape((14 * 14, 8))(c))
    r = L.GlobalMaxPooling1D()(r)
    f = L.Dropout(0.3)(L.Flatten()(L.MaxPooling2D(2)(c)))
    h = L.Concatenate()([g, r, L.Dense(16, activation=acts[3])(f)])
    return K.Model(inp, L.Dense(10, activation="softmax")(h), name="kitchen")


def sequential(K):
    L = K.layers
    return K.Sequential([K.Input((28, 28, 1)), L.Conv2D(6, 5, activation="relu"), L.BatchNormalization(),
                         L.MaxPooling2D(), L.Conv2D(12, 3), L.Activation("elu"), L.Flatten(),
                         L.Dropout(0.2), L.Dense(10, activation="softmax")], name="seq")


def multi_io(K):
    """Two inputs, two outputs, a layer shared by both inputs, nested sub-models used twice."""
    L = K.layers
    a, b = K.Input((28, 28, 1), name="a"), K.Input((28, 28, 1), name="b")
    si = K.Input((14, 14, 4))
    block = K.Model(si, L.BatchNormalization()(L.Conv2D(4, 3, padding="same", activation="relu")(si)),
                    name="block")
    seq = K.Sequential([K.Input((14, 14, 4)), L.Conv2D(4, 1), L.ReLU()], name="seqblock")
    stem = L.Conv2D(4, 3, strides=2, padding="same", name="stem")
    ya, yb = block(stem(a)), block(seq(stem(b)))
    o1 = L.Dense(10, activation="softmax", name="cls")(L.GlobalAveragePooling2D()(L.Concatenate()([ya, yb])))
    o2 = L.Conv2D(1, 1, name="seg")(L.Add()([ya, yb]))
    return K.Model([a, b], [o1, o2], name="multi")


def scalar_ops(K):
    """Python-scalar arithmetic on tensors (MobileNetV3's hard_sigmoid): Keras 3 ops / TFOpLambda."""
    L = K.layers
    inp = K.Input((28, 28, 1))
    x = L.Conv2D(8, 3)(inp)
    x = x * (L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0))
    x = (1.0 - x) / 2.0
    return K.Model(inp, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x)), name="ops")


def seq_relu6(K):
    """Sequential whose Activation('relu6') tf-keras lacks: comes back as an equivalent graph."""
    L = K.layers
    return K.Sequential([K.Input((28, 28, 1)), L.Conv2D(4, 3), L.Activation("relu6"), L.GlobalAveragePooling2D(),
                         L.Dense(10)], name="seq_relu6")


KERAS3_CASES = {"kitchen": kitchen, "sequential": sequential, "multi_io": multi_io, "scalar_ops": scalar_ops,
                "seq_relu6": seq_relu6}


@pytest.fixture(scope="module")
def images(fashion_mnist):
    return fashion_mnist.x_test[:16]


def inputs_for(model, images):
    return [images, images[::-1].copy()] if len(model.inputs) == 2 else images


# ---- Keras 3 files -> tf-keras -> Keras 3 files ---------------------------------------------------

@pytest.fixture(scope="module")
def keras3_runs(tmp_path_factory, images):
    import keras

    d = tmp_path_factory.mktemp("keras3")
    runs, jobs = {}, []
    cases = [(name, build, ".keras") for name, build in KERAS3_CASES.items()] + [("kitchen_h5", kitchen, ".h5")]
    for name, build, suffix in cases:
        keras.utils.set_random_seed(0)
        original = randomize(build(keras))
        x = inputs_for(original, images)
        src = d / f"{name}{suffix}"
        original.save(src)
        loaded = read_model(src)
        back = save_model(loaded.model, d / f"{name}_back{suffix}", flavor="keras3")
        runs[name] = {"ref": predict(original, x), "loaded": loaded, "got": predict(loaded.model, x), "back": back}
        jobs.append((back, x))
    version, outs = predict_in_clean_keras("keras3", jobs)
    assert version.startswith("3.")
    for (name, _, _), out in zip(cases, outs):
        runs[name]["clean"] = out
    return runs


@pytest.mark.slow  # the module fixture converts every case (minutes)
@pytest.mark.parametrize("name", [*KERAS3_CASES, "kitchen_h5"])
def test_keras3_file_loads_as_equal_tf_keras_model(keras3_runs, name):
    run = keras3_runs[name]
    loaded = run["loaded"]
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.model, tfk.Model)
    assert loaded.flavor == "keras3"
    assert loaded.format == ("h5" if name.endswith("_h5") else "keras")
    assert loaded.file_bytes == loaded.path.stat().st_size > 0
    assert_close(run["ref"], run["got"])


@pytest.mark.slow  # the module fixture converts every case (minutes)
@pytest.mark.parametrize("name", [*KERAS3_CASES, "kitchen_h5"])
def test_keras3_file_saved_back_loads_in_plain_keras3(keras3_runs, name):
    run = keras3_runs[name]
    assert run["back"].exists() and not list(run["back"].parent.glob(".*tmp*"))
    assert_close(run["ref"], run["clean"])


@pytest.mark.slow  # the module fixture converts every case (minutes)
def test_translation_keeps_names_sharing_and_nesting(keras3_runs):
    model = keras3_runs["multi_io"]["loaded"].model
    names = [layer.name for layer in model.layers]
    assert {"a", "b", "stem", "block", "seqblock", "cls", "seg"} <= set(names)
    assert len(model.get_layer("stem")._inbound_nodes) == 2          # still one shared layer
    assert type(model.get_layer("seqblock")).__name__ == "Sequential"
    assert type(keras3_runs["sequential"]["loaded"].model).__name__ == "Sequential"
    assert model.count_params() == sum(np.prod(w.shape) for w in model.weights)


# ---- tf-keras files (.keras, .h5, SavedModel) -> tf-keras; saved as Keras 3 and as tf-keras --------

TF_ACTS = ("relu", "swish", "hard_sigmoid", "selu")  # tf-keras hard_sigmoid differs from Keras 3's
TF_CASES = {
    "lenet5.keras": lambda: zoo.build("lenet5"),
    "resnet8.keras": lambda: zoo.build("resnet8"),
    "dscnn.h5": lambda: zoo.build("dscnn"),
    "mobilenetv2.h5": lambda: zoo.build("mobilenetv2"),
    "kitchen.keras": lambda: kitchen(tfk, TF_ACTS),
    "kitchen.h5": lambda: kitchen(tfk, TF_ACTS),
    "kitchen_savedmodel": lambda: kitchen(tfk, TF_ACTS),
    "multi_io.keras": lambda: multi_io(tfk),
    "scalar_ops.h5": lambda: scalar_ops(tfk),
}


@pytest.fixture(scope="module")
def tf_keras_runs(tmp_path_factory, images):
    d = tmp_path_factory.mktemp("tf_keras")
    runs, same_jobs, k3_jobs = {}, [], []
    for fname, build in TF_CASES.items():
        tfk.utils.set_random_seed(0)
        original = randomize(build())
        x = inputs_for(original, images)
        src = d / fname
        original.save(src, save_format="tf" if fname.endswith("_savedmodel") else None)
        loaded = read_model(src)
        stem, suffix = src.stem if src.suffix else src.name, src.suffix
        same = save_model(loaded.model, d / f"back_{stem}{suffix}", flavor="tf_keras")
        as_k3 = save_model(loaded.model, d / f"k3_{stem}{suffix or '.keras'}", flavor="keras3")
        runs[fname] = {"ref": predict(original, x), "loaded": loaded, "got": predict(loaded.model, x),
                       "same": same, "as_k3": as_k3}
        same_jobs.append((same, x))
        k3_jobs.append((as_k3, x))
    v2, same_outs = predict_in_clean_keras("tf_keras", same_jobs)
    v3, k3_outs = predict_in_clean_keras("keras3", k3_jobs)
    assert v2.startswith("2.") and v3.startswith("3.")
    for fname, a, b in zip(TF_CASES, same_outs, k3_outs):
        runs[fname]["clean_same"], runs[fname]["clean_k3"] = a, b
    return runs


@pytest.mark.slow  # the module fixture converts every case (minutes)
@pytest.mark.parametrize("fname", list(TF_CASES))
def test_tf_keras_file_loads_unchanged(tf_keras_runs, fname):
    run = tf_keras_runs[fname]
    assert run["loaded"].flavor == "tf_keras"
    assert run["loaded"].format == {".keras": "keras", ".h5": "h5", "": "savedmodel"}[run["loaded"].path.suffix]
    assert run["loaded"].file_bytes > 0
    assert_close(run["ref"], run["got"])


@pytest.mark.slow  # the module fixture converts every case (minutes)
@pytest.mark.parametrize("fname", list(TF_CASES))
def test_tf_keras_model_saved_back_loads_in_plain_tf_keras(tf_keras_runs, fname):
    assert_close(tf_keras_runs[fname]["ref"], tf_keras_runs[fname]["clean_same"])


@pytest.mark.slow  # the module fixture converts every case (minutes)
@pytest.mark.parametrize("fname", list(TF_CASES))
def test_tf_keras_model_saved_as_keras3_loads_in_plain_keras3(tf_keras_runs, fname):
    assert_close(tf_keras_runs[fname]["ref"], tf_keras_runs[fname]["clean_k3"])
