"""Small real model files, datasets and an in-process CLI runner for the error-contract tests."""
from __future__ import annotations

import hashlib
import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_SHAPE = (8, 8, 1)
CLASSES = 3


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def cli(*args) -> Result:
    """`edgeprune ARGS` in this process, through the same entry point as the console script."""
    from edgeprune.cli import run_command

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_command([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def assert_refused(r: Result, *needles: str) -> str:
    """Non-zero exit, one `error:` line (plus at most one `hint:` line), no traceback; returns the line."""
    assert r.code != 0, (r.code, r.stderr, r.stdout[-500:])
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert 1 <= len(r.lines) <= 2 and r.lines[0].startswith("error: "), r.stderr
    assert len(r.lines) == 1 or r.lines[1].startswith("hint: "), r.stderr
    for needle in needles:
        assert needle in r.lines[0], r.lines[0]
    return r.lines[0]


def tiny_model(two_inputs: bool = False, logits: bool = False):
    """A small conv net (tf-keras), fixed seed."""
    from edgeprune.keras import keras, layers

    keras.utils.set_random_seed(0)
    inp = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    inputs = [inp]
    if two_inputs:
        extra = keras.Input((2,), name="extra")
        x = layers.Concatenate(name="cat")([x, extra])
        inputs.append(extra)
    out = layers.Dense(CLASSES, activation=None if logits else "softmax", name="head")(x)
    return keras.Model(inputs if two_inputs else inp, out)


def write_models(folder: Path) -> dict[str, Path]:
    """Real .keras (Keras 3), .h5 (tf-keras), .tflite and .onnx files of the tiny model."""
    from edgeprune.export.tflite import export_tflite
    from edgeprune.modelio import save_model

    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    paths = {"keras": save_model(model, folder / "tiny.keras", flavor="keras3"),
             "h5": save_model(model, folder / "tiny.h5", flavor="tf_keras"),
             "tflite": export_tflite(model, folder / "tiny.tflite"),
             "onnx": write_onnx(folder / "tiny.onnx")}
    return {k: Path(v) for k, v in paths.items()}


def write_onnx(path: Path, dynamic_hw: bool = False) -> Path:
    """A small NHWC conv net as ONNX, built with onnx.helper (no converter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    h, w = ("height", "width") if dynamic_hw else INPUT_SHAPE[:2]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", h, w, 1])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", CLASSES])
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "conv_w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "conv_b"),
             numpy_helper.from_array(rng.normal(size=(4, CLASSES)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc_b")]
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_dataset(path: Path, n: int = 24, shape=INPUT_SHAPE, classes: int = CLASSES, **override) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((n, *shape), dtype=np.float32), "y_train": rng.integers(0, classes, n),
              "x_test": rng.random((n // 2, *shape), dtype=np.float32), "y_test": rng.integers(0, classes, n // 2)}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256): what a refused command must leave as it was."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
