"""In-process inference on exported files (LiteRT for .tflite, onnxruntime for .onnx), through
the export-target registry (edgeprune/export/targets.py).

`predict` always takes float inputs and returns float outputs: int8/uint8 input and output
tensors are (de)quantized with the tensor's own scale and zero point.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.export.targets import target_for_file


def file_format(path) -> str:
    """The registered export target's name for this file's suffix."""
    return target_for_file(path).name


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float → the tensor's dtype; int types use its (scale, zero_point)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if not scale:
            raise EdgepruneError(f"integer input '{detail['name']}' has no quantization scale", "re-export the model")
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero = detail["quantization"]
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y.astype(np.float32)


def tflite_predict(path, x: np.ndarray, batch_size: int, num_threads: int | None) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=num_threads)
    inp = interp.get_input_details()
    if len(inp) != 1:
        raise EdgepruneError(f"{path} has {len(inp)} inputs; predict handles single-input models", "use one input")
    inp = inp[0]
    out_index = interp.get_output_details()[0]["index"]
    current = None
    outs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        if current != len(chunk):
            interp.resize_tensor_input(inp["index"], [len(chunk), *inp["shape"][1:]])
            interp.allocate_tensors()
            current = len(chunk)
        interp.set_tensor(inp["index"], quantize_input(chunk, inp))
        interp.invoke()
        out = interp.get_output_details()[0]
        outs.append(dequantize_output(interp.get_tensor(out_index).copy(), out))
    return np.concatenate(outs)


def onnx_predict(path, x: np.ndarray, batch_size: int, num_threads: int | None) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()
    if len(inp) != 1:
        raise EdgepruneError(f"{path} has {len(inp)} inputs; predict handles single-input models", "use one input")
    name = inp[0].name
    fixed_batch = inp[0].shape[0] if isinstance(inp[0].shape[0], int) else None
    step = fixed_batch or batch_size
    outs = [sess.run(None, {name: x[i:i + step].astype(np.float32)})[0] for i in range(0, len(x), step)]
    return np.concatenate(outs).astype(np.float32)


def predict(path, x: np.ndarray, *, batch_size: int = 256, num_threads: int | None = None) -> np.ndarray:
    """Outputs of the exported file on `x` (float NHWC, batched by `batch_size`; 1 = per-sample)."""
    path = Path(path)
    if not path.is_file():
        raise EdgepruneError(f"exported model {path} does not exist", "export it first")
    x = np.asarray(x, dtype=np.float32)
    if batch_size < 1:
        raise EdgepruneError(f"batch_size must be ≥ 1, got {batch_size}", "use 1 for per-sample inference")
    target = target_for_file(path)
    try:
        return target.predict(path, x, batch_size, num_threads)
    except EdgepruneError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EdgepruneError(f"cannot run {path.name}: {first}", "re-export the model; check input shape and dtype") from err


def tflite_quant_mode(path) -> str:
    """'int8' (full integer), 'dynamic' (int8 weights only), 'fp16' or 'none', read from the file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    io = interp.get_input_details() + interp.get_output_details()
    if any(np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] for d in io):
        return "int8"
    ops = {op["op_name"] for op in interp._get_ops_details()}  # noqa: SLF001 (no public op list)
    if "QUANTIZE" in ops:
        return "int8"
    dtypes = {np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    if np.dtype(np.int8) in dtypes:
        return "dynamic"
    if np.dtype(np.float16) in dtypes:
        return "fp16"
    return "none"


def onnx_quant_mode(path) -> str:
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    return "int8" if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"} else "none"


def quant_mode(path) -> str:
    """The file's precision, read back from the file by its target."""
    return target_for_file(path).read_precision(path)
