"""Small real models for the harness tests (float/int8 TFLite, ONNX), built once per test session.

A tiny CNN is trained briefly on a real Fashion-MNIST slice and converted with TFLiteConverter and
tf2onnx directly.  Other harness test files import ``harness_models()`` from here; the tests in this
file check the fixture itself is what those tests assume.
"""
from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

EVAL_SAMPLES = 200


@dataclass(frozen=True)
class HarnessModels:
    float_tflite: Path
    int8_tflite: Path
    onnx: Path
    eval_npz: Path
    x_eval: np.ndarray
    y_eval: np.ndarray
    keras_predictions: np.ndarray


@functools.cache
def harness_models() -> HarnessModels:
    import tensorflow as tf
    import tf2onnx

    from edgeprune.data import load_dataset
    from edgeprune.keras import keras, layers

    ds = load_dataset("fashion_mnist").subset(train=3000, test=EVAL_SAMPLES)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(ds.x_train.shape[1:]),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=2, batch_size=64, verbose=0)

    out = Path(tempfile.mkdtemp(prefix="edgeprune-harness-models-"))
    float_tflite = out / "tiny_float.tflite"
    float_tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    calib = ds.x_train[:100]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8_tflite = out / "tiny_int8.tflite"
    int8_tflite.write_bytes(conv.convert())

    onnx_path = out / "tiny.onnx"
    spec = (tf.TensorSpec((None, *ds.x_train.shape[1:]), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=15, output_path=str(onnx_path))

    eval_npz = out / "eval.npz"
    np.savez(eval_npz, x=ds.x_test, y=ds.y_test)
    keras_pred = np.argmax(model.predict(ds.x_test, verbose=0), axis=1)
    return HarnessModels(float_tflite, int8_tflite, onnx_path, eval_npz, ds.x_test, ds.y_test, keras_pred)


def test_fixture_models_are_trained_and_int8_is_really_quantized():
    from ai_edge_litert.interpreter import Interpreter

    m = harness_models()
    assert np.mean(m.keras_predictions == m.y_eval) > 0.6  # trained, not chance (10 classes)
    interp = Interpreter(model_path=str(m.int8_tflite))
    (inp,) = interp.get_input_details()
    assert inp["dtype"] == np.int8 and inp["quantization"][0] > 0
    assert interp.get_output_details()[0]["dtype"] == np.int8
    assert m.int8_tflite.stat().st_size < m.float_tflite.stat().st_size


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
