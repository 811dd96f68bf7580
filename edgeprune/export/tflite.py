"""Keras → TFLite flatbuffer (float32, PTQ int8 / dynamic / fp16, QAT int8, or float32 stored sparse)."""
from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export import runtime
from edgeprune.export.targets import ExportOptions, ExportTarget
from edgeprune.fileio import atomic_output as atomic_path
from edgeprune.quantize import TFLITE_QUANT_MODES
from edgeprune.quantize.ptq import configure_converter
from edgeprune.quantize.selective import check_keep_float, convert_mixed


def layers_with_ops(model, op_types) -> list[str]:
    """Keras layers whose traced TF graph holds ops of these types (op names are ``model/layer/Op``)."""
    # TensorFlow loads only when a model is traced: plan validation imports every export target
    import tensorflow as tf

    try:
        spec = [tf.TensorSpec((None, *i.shape[1:]), i.dtype) for i in model.inputs]
        graph = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0])).get_concrete_function(*spec).graph
    except Exception:  # tracing is best effort: the error message still names the op
        return []
    names = {l.name for l in model.layers} | {l.layer.name for l in model.layers if hasattr(l, "layer")}
    found = []
    for op in graph.get_operations():
        if op.type in op_types:
            hit = next((part for part in op.name.split("/") if part in names), None)
            if hit and hit not in found:
                found.append(hit)
    return found


def converter_error(model, err: Exception) -> EdgepruneError:
    """One line naming the TF ops the converter could not lower and the Keras layers they came from."""
    msg = str(err)
    ops = set(re.findall(r"'(tf\.[\w.]+)' op", msg))
    for group in re.findall(r"(?:Custom|Flex) ops: ([\w, ]+)", msg):
        ops.update(f"tf.{op.strip()}" for op in group.split(",") if op.strip())
    ops = sorted(ops)
    names = layers_with_ops(model, {op.removeprefix("tf.") for op in ops}) if ops else []
    if ops:
        where = f" (in layer {', '.join(repr(n) for n in names)})" if names else ""
        return EdgepruneError(
            f"TFLite cannot convert op {', '.join(ops)}{where}",
            "replace that layer with TFLite builtin ops, or remove it before export",
        )
    first = next((l for l in msg.splitlines() if "error" in l.lower()), msg.splitlines()[0] if msg else type(err).__name__)
    return EdgepruneError(f"TFLite conversion failed: {first.strip()[:240]}", "check the model converts with tf.lite.TFLiteConverter")


def convert_tflite(model, *, quant: str = "none", calibration=None, int8_io: bool = False,
                   keep_float=()) -> bytes:
    """The flatbuffer bytes of `model` in the requested quantization mode (`keep_float`: layers of a mixed file)."""
    # TensorFlow, qat and native_qat load only when a model is converted: plan validation imports every export target
    import tensorflow as tf

    from edgeprune.quantize.native_qat import is_native_qat_model
    from edgeprune.quantize.qat import is_qat_model

    if is_native_qat_model(model):  # Keras 3 QAT: full int8 from its own fake-quant ranges
        if quant not in ("none", "int8") or keep_float:
            raise EdgepruneError(f"a QAT model converts to int8, not '{quant}'" + (" with keep_float" if keep_float else ""),
                                 "export its float parent stage for other precisions")
        return _convert_native(model, int8_io=int8_io)
    if quant == "mixed" and not keep_float:
        raise EdgepruneError("a mixed-precision export needs the layers to keep float",
                             "name them (keep_float: [conv1]) or export as int8")
    if keep_float and quant != "mixed":
        raise EdgepruneError(f"keep_float only applies to quant 'mixed', not '{quant}'", "use quant mixed")
    if quant == "sparse" and is_qat_model(model):
        raise EdgepruneError("a QAT model converts to int8, not 'sparse' (XNNPACK's sparse path is float only)",
                             "export its float parent stage as sparse")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure_converter(converter, quant="none" if quant == "sparse" else quant, calibration=calibration,
                        int8_io=int8_io, qat=is_qat_model(model), input_shape=tuple(model.inputs[0].shape))
    if quant == "sparse":  # float32 weights; the converter stores mostly-zero kernels sparse (+ DENSIFY ops)
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        if quant == "mixed":
            return convert_mixed(converter, converter.representative_dataset, check_keep_float(model, keep_float))
        return converter.convert()
    except EdgepruneError:
        raise
    except Exception as err:  # ConverterError, ValueError, RuntimeError from MLIR
        raise converter_error(model, err) from err


def _convert_native(model, *, int8_io: bool = False) -> bytes:
    """Flatbuffer bytes of a native (Keras 3) QAT model, full int8 (float or int8 input/output), checked.

    It converts from a concrete function without the trackable object: the converter then freezes the
    variables first and reads the fake-quant ranges (and the BN-folded kernels) as constants; through the
    SavedModel path it keeps them as variables and refuses every FakeQuant op.
    """
    # TensorFlow and native_qat load only when a model is converted: plan validation imports every export target
    import tensorflow as tf

    from edgeprune.quantize.native_qat import check_full_int8, serving_function

    fn, spec = serving_function(model)
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # its "consider providing the trackable_obj" warning is this choice
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*spec)])
    finally:
        absl.setLevel(level)
    configure_converter(converter, quant="none", int8_io=int8_io, qat=True)
    try:
        with warnings.catch_warnings():  # the ranges are in the fake-quant ops, not in input statistics
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            data = converter.convert()
    except Exception as err:  # ConverterError, ValueError, RuntimeError from MLIR
        raise converter_error(model, err) from err
    check_full_int8(model, data)
    return data


def export_tflite(model, path, *, quant: str = "none", calibration=None, int8_io: bool = False,
                  keep_float=()) -> Path:
    """Convert and write `model` to `path` atomically; returns the path.

    quant: ``none`` | ``int8`` (needs `calibration`, training samples NHWC) | ``fp16`` | ``dynamic`` |
    ``mixed`` (int8 with the layers in `keep_float` left float32; needs `calibration`) | ``sparse`` (float32,
    1×1 kernels stored sparse; refused with the reasons when XNNPACK's sparse path would not run the file,
    see :mod:`edgeprune.export.sparse_1x1`).
    A QAT model converts to int8 (``none`` or ``int8``). `int8_io` makes the input/output int8.
    """
    path = Path(path)
    data = convert_tflite(model, quant=quant, calibration=calibration, int8_io=int8_io, keep_float=keep_float)
    if quant == "sparse":
        from edgeprune.export.sparse_1x1 import check_sparse  # reads the flatbuffer: only for sparse files

        check_sparse(data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        _check_loads(tmp)
    return path


def _check_loads(path: Path):
    """The file must load and allocate in LiteRT, or it is not written."""
    # LiteRT loads only when a file is checked: plan validation imports every export target
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_path=str(path)).allocate_tensors()
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EdgepruneError(f"converted TFLite model does not load in LiteRT: {first}",
                             "report it with the model file") from err


def _write(model, path, *, quant: str, calibration=None, options: ExportOptions = ExportOptions()) -> Path:
    return export_tflite(model, path, quant=quant, calibration=calibration, int8_io=options.int8_io,
                         keep_float=options.keep_float)


TARGET = ExportTarget(
    name="tflite", suffix=".tflite", precisions=(*TFLITE_QUANT_MODES, "sparse"), write=_write,
    predict=runtime.tflite_predict, read_precision=runtime.tflite_quant_mode, check_file=runtime.check_tflite_file, interpreter_key="tflite",
    description="TFLite flatbuffer, run by LiteRT (ai_edge_litert) or tflite_runtime",
)
