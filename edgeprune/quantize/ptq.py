"""Post-training quantization settings for the TFLite converter.

Modes: ``none`` (float32), ``int8`` (full-integer with a representative dataset; float or int8
input/output), ``dynamic`` (int8 weights, float activations), ``fp16`` (float16 weights),
``mixed`` (int8 with chosen layers kept float; see :mod:`edgeprune.quantize.selective`).
Weights are quantized per channel (the converter's default). A QAT model always converts to
int8: its fake-quant nodes carry the scales, so it needs no calibration.
"""
from __future__ import annotations

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.quantize import TFLITE_QUANT_MODES


def check_calibration(calibration, input_shape, *, needed: bool) -> np.ndarray | None:
    """Validate representative samples against the model's input shape (without batch)."""
    if calibration is None:
        if needed:
            raise EdgepruneError(
                "int8 post-training quantization needs calibration data",
                "pass representative training samples (e.g. --calib-data fashion_mnist or a .npz)",
            )
        return None
    cal = np.asarray(calibration, dtype=np.float32)
    want = tuple(d for d in input_shape[1:])
    if cal.ndim != len(want) + 1 or any(w is not None and w != c for w, c in zip(want, cal.shape[1:])):
        raise EdgepruneError(
            f"calibration samples have shape {cal.shape[1:]} but the model takes {want}",
            "use samples from the data the model was trained on",
        )
    if len(cal) == 0:
        raise EdgepruneError("calibration data is empty", "pass at least one representative sample (100–500 is typical)")
    if not np.isfinite(cal).all():
        raise EdgepruneError("calibration data contains NaN or inf", "clean the representative samples")
    return cal


def representative_dataset(samples: np.ndarray):
    """Generator factory the converter calls: one sample per step, batch of one."""

    def gen():
        for s in samples:
            yield [s[None, ...].astype(np.float32)]

    return gen


def configure_converter(converter, *, quant: str, calibration=None, int8_io: bool = False,
                        qat: bool = False, input_shape=None):
    """Set optimizations / types on a `tf.lite.TFLiteConverter` for the requested mode."""
    # TensorFlow loads only when a converter is set up: the CLI imports this module
    import tensorflow as tf

    if quant not in TFLITE_QUANT_MODES:
        raise EdgepruneError(f"unknown TFLite quantization '{quant}'", f"use one of {', '.join(TFLITE_QUANT_MODES)}")
    if int8_io and not (quant == "int8" or qat):
        raise EdgepruneError(f"int8 input/output needs an int8 model, not quant='{quant}'", "use quant='int8' with int8_io")
    if qat:
        if quant == "mixed":
            raise EdgepruneError("a QAT model is not exported as 'mixed'",
                                 "keep its layers float with quantize.skip_layers, then export it as int8")
        if quant not in ("none", "int8"):
            raise EdgepruneError(
                f"a QAT model converts to int8 only, not '{quant}'",
                "export it with quant int8, or export the float model it was trained from",
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quant == "int8":
        cal = check_calibration(calibration, input_shape, needed=True)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(cal)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quant == "mixed":  # float ops stay possible: selective.convert_mixed keeps chosen layers float
        cal = check_calibration(calibration, input_shape, needed=True)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(cal)
    elif quant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter
