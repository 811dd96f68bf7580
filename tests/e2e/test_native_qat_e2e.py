"""Native (Keras 3) quantization-aware training: graph rewrite, BN folding, full-int8 TFLite, .keras round trip."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.export.tflite import convert_tflite, export_tflite

from edgeprune.quantize import native_qat as nq  # noqa: E402

keras = nq.keras
L = keras.layers

INT8_COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")
SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}  # int32 shape arithmetic of a dynamic-batch Flatten


@pytest.fixture(autouse=True)
def seeded():
    """Every model starts from the same initial weights (a flaky threshold is no test)."""
    keras.utils.set_random_seed(0)


def small_cnn():
    """Conv+BN+ReLU, DepthwiseConv2D, SeparableConv2D, a residual Add, Dense softmax."""
    i = keras.Input((28, 28, 1), name="img")
    h = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="c1")(i)
    h = L.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = L.ReLU(name="r1")(h)
    s = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(h)
    s = L.SeparableConv2D(8, 3, padding="same", name="sep")(s)
    s = L.BatchNormalization(momentum=0.9, name="bn2")(s)
    h = L.Add(name="add")([h, s])
    h = L.ReLU(name="r2")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    o = L.Dense(10, activation="softmax", name="fc")(h)
    return keras.Model(i, o, name="small_cnn")


def conv1d_logits():
    """Rows of the image as a sequence: Conv1D+BN+ReLU, causal Conv1D, global pooling, Dense logits."""
    i = keras.Input((28, 28), name="seq")
    h = L.Conv1D(16, 3, padding="same", use_bias=False, name="c1")(i)
    h = L.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = L.Activation("relu", name="a1")(h)
    h = L.Conv1D(16, 3, padding="causal", dilation_rate=2, activation="relu", name="c2")(h)
    h = L.GlobalAveragePooling1D(name="gap")(h)
    return keras.Model(i, L.Dense(10, name="logits")(h), name="conv1d_logits")


def lenet():
    i = keras.Input((28, 28, 1), name="img")
    h = L.Conv2D(16, 5, use_bias=False, name="c1")(i)
    h = L.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = L.ReLU(name="r1")(h)
    h = L.MaxPooling2D(2, name="p1")(h)
    h = L.Conv2D(32, 5, activation="relu", name="c2")(h)
    h = L.MaxPooling2D(2, name="p2")(h)
    h = L.Flatten(name="flat")(h)
    h = L.Dense(64, activation="relu", name="fc1")(h)
    return keras.Model(i, L.Dense(10, activation="softmax", name="fc2")(h), name="lenet")


def train(model, x, y, *, epochs=1, lr=1e-3, logits=False):
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return model


def tflite_run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def assert_full_int8(data: bytes, *, float_io: bool = True):
    """QUANTIZE first, DEQUANTIZE last (float I/O), and only int8 tensors (plus int32 bias/shape) in between."""
    ops = nq.tflite_ops(data)
    names = [op["op"] for op in ops]
    if float_io:
        assert names[0] == "QUANTIZE" and ops[0]["inputs"] == ["float32"], names
        assert names[-1] == "DEQUANTIZE" and ops[-1]["outputs"] == ["float32"], names
        inner = ops[1:-1]
    else:
        assert "QUANTIZE" not in names and "DEQUANTIZE" not in names, names
        inner = ops
    for op in inner:
        assert "float32" not in op["inputs"] + op["outputs"], op
        if op["op"] in INT8_COMPUTE:
            assert op["inputs"][:2] == ["int8", "int8"], op
            assert op["outputs"] == ["int8"], op
            if op["op"] != "ADD" and len(op["inputs"]) > 2:
                assert op["inputs"][2] == "int32", op  # the bias
        elif op["op"] not in SHAPE_OPS:
            assert set(op["outputs"]) == {"int8"}, op
    return names


def test_cnn_quantizes_trains_and_converts_to_full_int8(mnist):
    x, y, xt, yt = mnist
    model = train(small_cnn(), x[:2000], y[:2000], lr=3e-3)
    qat = nq.quantize_native(model)
    # same float weights, BN folded into the conv before it, SeparableConv2D split as TFLite runs it
    types = {l.name: type(l).__name__ for l in qat.layers}
    assert types["c1"] == "QuantConv2D" and "bn1" not in types and "bn2" not in types
    assert types["sep_depthwise"] == "QuantDepthwiseConv2D" and types["sep"] == "QuantConv2D"
    np.testing.assert_array_equal(qat.get_layer("c1").kernel.numpy(), model.get_layer("c1").kernel.numpy())
    np.testing.assert_array_equal(qat.get_layer("c1").bn_moving_variance.numpy(),
                                  model.get_layer("bn1").moving_variance.numpy())
    np.testing.assert_array_equal(qat.get_layer("sep").kernel.numpy(), model.get_layer("sep").pointwise_kernel.numpy())
    # before any QAT step the model is the float one up to rounding (ranges start at [-6, 6])
    p_float, p_qat = model.predict(xt[:200], verbose=0), qat.predict(xt[:200], verbose=0)
    assert np.mean(np.argmax(p_float, 1) == np.argmax(p_qat, 1)) > 0.9

    train(qat, x[2000:4000], y[2000:4000], lr=1e-4)
    data = convert_tflite(qat, quant="int8")
    names = assert_full_int8(data)
    assert names.count("CONV_2D") == 2 and names.count("DEPTHWISE_CONV_2D") == 2
    assert names.count("FULLY_CONNECTED") == 1 and names.count("ADD") == 1 and "SOFTMAX" in names
    acc = np.mean(np.argmax(tflite_run(data, xt[:500]), 1) == yt[:500])
    assert acc > 0.6  # chance is 0.1; 4000 samples, 2 short epochs


def test_conv1d_with_logits_converts_with_int8_io(mnist):
    x, y, xt, yt = mnist
    model = train(conv1d_logits(), x[:2000, ..., 0], y[:2000], logits=True)
    qat = nq.quantize_native(model)
    assert {type(l).__name__ for l in qat.layers} >= {"QuantConv1D", "QuantDense", "ActivationQuantizer"}
    train(qat, x[2000:3000, ..., 0], y[2000:3000], lr=1e-4, logits=True)
    data = convert_tflite(qat, quant="int8", int8_io=True)
    names = assert_full_int8(data, float_io=False)
    assert names.count("CONV_2D") == 2 and names.count("FULLY_CONNECTED") == 1
    assert "SOFTMAX" not in names
    keras_out = qat.predict(xt[:300, ..., 0], verbose=0)
    lite_out = tflite_run(data, xt[:300, ..., 0])
    assert np.mean(np.argmax(keras_out, 1) == np.argmax(lite_out, 1)) >= 0.97


@pytest.mark.slow
def test_trained_qat_model_and_tflite_agree_on_top1(mnist, tmp_path):
    x, y, xt, yt = mnist
    model = train(lenet(), x, y, epochs=2)
    qat = train(nq.quantize_native(model), x, y, lr=1e-4)
    path = export_tflite(qat, tmp_path / "lenet_int8.tflite", quant="int8")
    lite = tflite_run(path.read_bytes(), xt)
    keras_top1 = np.argmax(qat.predict(xt, verbose=0), 1)
    agree = np.mean(np.argmax(lite, 1) == keras_top1)
    assert agree >= 0.99, agree
    assert np.mean(np.argmax(lite, 1) == yt) > 0.95


@pytest.mark.slow
def test_keras_file_loads_in_a_fresh_process(mnist, tmp_path):
    x, y, xt, _ = mnist
    qat = nq.quantize_native(small_cnn())
    train(qat, x[:256], y[:256])  # moves the ranges and BN statistics off their initial values
    path = nq.save_native(qat, tmp_path / "qat.keras")
    np.save(tmp_path / "x.npy", xt[:64])
    script = textwrap.dedent(f"""
        import numpy as np, keras
        import edgeprune.quantize.native_qat  # registers the layers
        m = keras.models.load_model({str(path)!r})
        np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))
        print(sorted({{type(l).__name__ for l in m.layers}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "QuantConv2D" in run.stdout and "ActivationQuantizer" in run.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), qat.predict(xt[:64], verbose=0), atol=1e-6)
    loaded = nq.load_native(path)
    for a, b in zip(loaded.weights, qat.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the file is for inference and export: no optimizer state (Adam's slots made it 3x the weights),
    # while the model in memory keeps its optimizer
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
        assert "optimizer" not in h5.keys(), list(h5.keys())
    assert qat.optimizer is not None
    with pytest.raises(EdgepruneError, match="saved as .keras"):
        nq.save_native(qat, tmp_path / "qat.h5")


def test_bn_is_folded_before_the_weight_quantizer(mnist):
    x, y, xt, _ = mnist
    model = small_cnn()
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn1")  # statistics far from identity, so an unfolded quantizer would show
    bn.gamma.assign(rng.uniform(0.2, 3.0, 8).astype("f4"))
    bn.beta.assign(rng.normal(0, 0.5, 8).astype("f4"))
    bn.moving_mean.assign(rng.normal(0, 0.3, 8).astype("f4"))
    bn.moving_variance.assign(rng.uniform(0.05, 4.0, 8).astype("f4"))
    qat = nq.quantize_native(model)
    train(qat, x[:256], y[:256], lr=1e-4)

    conv = qat.get_layer("c1")
    kernel, bias = (t.numpy() for t in conv.folded_kernel_and_bias())  # (kh, kw, in, out)
    scale = np.maximum(np.abs(kernel).max(axis=(0, 1, 2)), nl_min_range()) / 127.0
    ours = np.round(kernel / scale)

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=convert_tflite(qat, quant="int8"),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    first_conv = next(op for op in it._get_ops_details() if op["op_name"] == "CONV_2D")
    w = tensors[first_conv["inputs"][1]]
    q = it.get_tensor(w["index"]).astype(np.float32).transpose(1, 2, 3, 0)  # TFLite OHWI -> HWIO
    np.testing.assert_allclose(w["quantization_parameters"]["scales"], scale, rtol=1e-5)
    assert np.abs(q - ours).max() <= 1  # within one quantization step
    # the unfolded kernel, quantized on its own, is not what the file holds
    raw = conv.kernel.numpy()
    raw_scale = np.abs(raw).max(axis=(0, 1, 2)) / 127.0
    assert not np.allclose(w["quantization_parameters"]["scales"], raw_scale, rtol=1e-2)
    # the int32 bias is the folded bias at scale input_scale * weight_scale
    b = tensors[first_conv["inputs"][2]]
    in_scale = tensors[first_conv["inputs"][0]]["quantization_parameters"]["scales"][0]
    np.testing.assert_allclose(it.get_tensor(b["index"]) * in_scale * scale, bias, atol=in_scale * scale.max())


def nl_min_range():
    from edgeprune.quantize.native_layers import MIN_WEIGHT_RANGE

    return MIN_WEIGHT_RANGE


@pytest.mark.slow
def test_recipe_with_the_native_backend_ships_a_full_int8_file(tmp_path):
    """quantize {backend: native} in a recipe: the QAT stage is a Keras 3 .keras file, its TFLite export is
    int8 in every conv / fully-connected op and agrees with it, its ONNX export stays int8 (QDQ)."""
    import json

    import onnx

    from edgeprune.recipe import run_recipe

    recipe = tmp_path / "native.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: native
        model: lenet5
        dataset: {name: fashion_mnist, max_train_samples: 2000, test_samples: 500}
        steps:
          - train: {epochs: 1}
          - prune: {ratio: 0.5, round_to: 4}
          - quantize: {mode: qat, backend: native, epochs: 1}
          - export: {formats: [tflite, onnx]}
        """))
    run = run_recipe(recipe, out_dir=tmp_path / "run", log=lambda *a: None)
    m = json.loads((run / "metrics.json").read_text())
    assert m["stages"]["qat"]["model_path"] == "models/qat.keras"
    assert next(s for s in m["steps"] if s["name"] == "quantize")["backend"] == "native"
    rows = {(e["format"], e["quant"]): e for e in m["exports"] if e["stage"] == "qat"}
    tfl = rows[("tflite", "int8")]
    assert tfl["top1_agreement"] >= 0.99 and tfl["accuracy"] > 0.6
    ops = nq.tflite_ops((run / tfl["path"]).read_bytes())
    compute = [o for o in ops if o["op"] in INT8_COMPUTE]
    assert len(compute) == 4 and all(o["inputs"][:2] == ["int8", "int8"] for o in compute), ops
    onnx_model = onnx.load(str(run / rows[("onnx", "int8")]["path"]))
    assert any(i.data_type == onnx.TensorProto.INT8 for i in onnx_model.graph.initializer)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx_model.graph.node}
    assert type(nq.load_native(run / "models" / "qat.keras")).__module__.startswith("keras.")
