"""Keras → ONNX with tf2onnx (float, or QDQ with int8 weights for a QAT model), optionally int8 via onnxruntime."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export import runtime
from edgeprune.export.targets import ExportOptions, ExportTarget
from edgeprune.fileio import atomic_output as atomic_path
from edgeprune.quantize import ONNX_QUANT_MODES
from edgeprune.quantize.onnx_ptq import quantize_onnx_static
from edgeprune.quantize.ptq import check_calibration

OPSETS = range(13, 19)  # what tf2onnx 1.17 converts and onnx.checker accepts here
STANDARD_DOMAINS = {"", "ai.onnx", "com.microsoft"}


def _layer_of(model, node_name: str) -> str | None:
    """The Keras layer a TF/ONNX node name (``model/conv1/Conv2D``) belongs to, if recognisable."""
    parts = set(re.split(r"[/:]", node_name))
    for layer in model.layers:
        names = {layer.name, getattr(getattr(layer, "layer", None), "name", layer.name)}
        if names & parts:
            return layer.name
    return None


def _unsupported_error(model, ops: dict[str, str]) -> EdgepruneError:
    desc = ", ".join(
        f"{op}" + (f" (layer '{layer}')" if (layer := _layer_of(model, node)) else "") for op, node in ops.items()
    )
    return EdgepruneError(f"tf2onnx cannot convert op {desc}",
                          "replace that layer with standard ops, or try another opset (13–18)")


def convert_onnx(model, *, opset: int = 15):
    """The float (or QDQ, for a QAT model) ONNX ModelProto of `model`."""
    # onnx, TensorFlow and tf2onnx load only when a model is converted: plan validation imports every export target
    import onnx
    import tensorflow as tf
    import tf2onnx

    if opset not in OPSETS:
        raise EdgepruneError(f"ONNX opset {opset} is not supported", f"use {OPSETS.start}–{OPSETS.stop - 1} (default 15)")
    # native_qat loads Keras 3 (TensorFlow): only when a model is converted
    from edgeprune.quantize.native_qat import is_native_qat_model, serving_function

    spec = tuple(tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name=inp.name.split(":")[0])
                 for inp in model.inputs)
    try:
        if is_native_qat_model(model):  # its fake-quant ranges become QuantizeLinear/DequantizeLinear pairs
            fn, spec = serving_function(model)
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
        else:
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as err:
        msg = str(err)
        m = re.search(r"(?:Unsupported ops?|not supported|Tensorflow op \[([^\]]+)\]).*?(\w+)", msg)
        node = re.search(r"\[([\w/:.\-]+): ?(\w+)\]", msg)
        if node:
            raise _unsupported_error(model, {node.group(2): node.group(1)}) from err
        first = (msg.strip().splitlines() or [type(err).__name__])[0][:240]
        raise EdgepruneError(f"ONNX conversion failed: {first}" + (f" ({m.group(0)[:80]})" if m else ""),
                             "check the model converts with tf2onnx") from err
    unknown = {n.op_type: n.name for n in proto.graph.node
               if n.domain not in STANDARD_DOMAINS or (n.domain != "com.microsoft" and not onnx.defs.has(n.op_type))}
    if unknown:
        raise _unsupported_error(model, unknown)
    return proto


def _check(path: Path):
    # onnx loads only when a file is checked: plan validation imports every export target
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
        raise EdgepruneError(f"exported ONNX model is invalid: {first}", "report it with the model file") from err


def export_onnx(model, path, *, quant: str = "none", calibration=None, opset: int = 15) -> Path:
    """Convert and write `model` to `path` atomically; `onnx.checker` must pass. Returns the path.

    quant ``int8`` quantizes the float graph statically with onnxruntime (QDQ, U8S8, per-channel)
    using `calibration` (training samples). A QAT model exports as QDQ from its own fake-quant
    scales and needs no calibration; its weights are stored as int8 initializers.
    """
    # onnx, qat and native_qat (TensorFlow) load only on export: plan validation imports every export target
    import onnx

    from edgeprune.quantize.native_qat import is_native_qat_model
    from edgeprune.quantize.onnx_weights import store_int8_weights
    from edgeprune.quantize.qat import is_qat_model

    if quant not in ONNX_QUANT_MODES:
        raise EdgepruneError(f"unknown ONNX quantization '{quant}'", f"use one of {', '.join(ONNX_QUANT_MODES)}")
    path = Path(path)
    qat = is_native_qat_model(model) or is_qat_model(model)
    cal = None
    if quant == "int8" and not qat:
        cal = check_calibration(calibration, tuple(model.inputs[0].shape), needed=True)
    proto = convert_onnx(model, opset=opset)
    if qat:
        store_int8_weights(proto)
    with atomic_path(path) as tmp:
        if cal is None:
            onnx.save(proto, str(tmp))
        else:
            with tempfile.TemporaryDirectory(prefix="edgeprune-onnx-") as work:
                float_path = Path(work) / "float.onnx"
                onnx.save(proto, str(float_path))
                quantize_onnx_static(float_path, tmp, cal)
        _check(tmp)
    return path


def _write(model, path, *, quant: str, calibration=None, options: ExportOptions = ExportOptions()) -> Path:
    return export_onnx(model, path, quant=quant, calibration=calibration, opset=options.opset)


TARGET = ExportTarget(
    name="onnx", suffix=".onnx", precisions=ONNX_QUANT_MODES, write=_write,
    predict=runtime.onnx_predict, read_precision=runtime.onnx_quant_mode, check_file=runtime.check_onnx_file, interpreter_key="onnx",
    calibrated=frozenset({"int8"}), description="ONNX graph (tf2onnx), run by onnxruntime",
)
