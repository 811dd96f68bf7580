"""Small real models for the harness tests (float/int8 TFLite, ONNX), built once per test session.

A tiny CNN is trained briefly on a real Fashion-MNIST slice and converted with TFLiteConverter and
tf2onnx directly (once per session: ``functools.cache``).  The e2e harness, SSH and ORT tests import
``harness_models()`` from here; tests/e2e/test_harness_models.py checks it is what those tests assume.
"""
from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
