"""Keras → TFLite flatbuffer (float32, PTQ int8 / dynamic / fp16, or QAT int8)."""
from __future__ import annotations

import re
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export.atomic import atomic_path
from edgeprune.quantize.ptq import configure_converter


def layers_in_message(model, message: str) -> list[str]:
    """Keras layer names that appear as graph scopes (``.../name/...``) in a converter message."""
    found = []
    for layer in model.layers:
        inner = getattr(layer, "layer", None)  # QuantizeWrapper → wrapped layer
        for name in {layer.name, getattr(inner, "name", layer.name)}:
            if re.search(rf"(^|[/\"'(\s]){re.escape(name)}(/|\b)", message) and name not in found:
                found.append(name)
    return found


def converter_error(model, err: Exception) -> EdgepruneError:
    """One line naming the TF ops the converter could not lower and the Keras layers they came from."""
    msg = str(err)
    ops = sorted(set(re.findall(r"'(tf\.[\w.]+)' op", msg)))
    names = layers_in_message(model, msg) if ops else []
    if ops:
        where = f" (in layer {', '.join(repr(n) for n in names)})" if names else ""
        return EdgepruneError(
            f"TFLite cannot convert op {', '.join(ops)}{where}",
            "replace that layer with TFLite builtin ops, or remove it before export",
        )
    first = next((l for l in msg.splitlines() if "error" in l.lower()), msg.splitlines()[0] if msg else type(err).__name__)
    return EdgepruneError(f"TFLite conversion failed: {first.strip()[:240]}", "check the model converts with tf.lite.TFLiteConverter")


def convert_tflite(model, *, quant: str = "none", calibration=None, int8_io: bool = False) -> bytes:
    """The flatbuffer bytes of `model` in the requested quantization mode."""
    import tensorflow as tf

    from edgeprune.quantize.qat import is_qat_model

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure_converter(converter, quant=quant, calibration=calibration, int8_io=int8_io,
                        qat=is_qat_model(model), input_shape=tuple(model.inputs[0].shape))
    try:
        return converter.convert()
    except EdgepruneError:
        raise
    except Exception as err:  # ConverterError, ValueError, RuntimeError from MLIR
        raise converter_error(model, err) from err


def export_tflite(model, path, *, quant: str = "none", calibration=None, int8_io: bool = False) -> Path:
    """Convert and write `model` to `path` atomically; returns the path.

    quant: ``none`` | ``int8`` (needs `calibration`, training samples NHWC) | ``fp16`` | ``dynamic``.
    A QAT model converts to int8 (``none`` or ``int8``). `int8_io` makes the input/output int8.
    """
    path = Path(path)
    data = convert_tflite(model, quant=quant, calibration=calibration, int8_io=int8_io)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        _check_loads(tmp)
    return path


def _check_loads(path: Path):
    """The file must load and allocate in LiteRT, or it is not written."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_path=str(path)).allocate_tensors()
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EdgepruneError(f"converted TFLite model does not load in LiteRT: {first}",
                             "report it with the model file") from err
