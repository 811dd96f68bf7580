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


TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer
REEXPORT = "export it again (edgeprune export) and pass that file"


def check_exported_file(path) -> None:
    """Refuse in one line a file no runtime could run (empty, truncated, not its format): the file's
    export target says what a well-formed file of its kind looks like."""
    path = Path(path)
    target = target_for_file(path)
    if path.stat().st_size == 0:
        raise EdgepruneError(f"{path} is empty (0 bytes)", REEXPORT)
    if target.check_file is not None:
        target.check_file(path)


def check_tflite_file(path: Path) -> None:
    """A TFLite flatbuffer: the TFL3 identifier at bytes 4..8 and a root offset inside the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER or int.from_bytes(head[:4], "little") >= size:
        raise EdgepruneError(f"{path} is not a complete TFLite file (no TFL3 flatbuffer header)", REEXPORT)


def check_onnx_file(path: Path) -> None:
    """An ONNX protobuf whose inputs have fixed sizes except the batch axis (runtimes would fail deep
    inside, e.g. in Reshape, on a dynamic height/width)."""
    # onnx loads only when an ONNX file is read: the CLI imports this module
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # noqa: BLE001 - protobuf's decode errors have no common base
        raise EdgepruneError(f"{path} is not a readable ONNX file ({type(e).__name__})", REEXPORT) from None
    initializers = {t.name for t in graph.initializer}
    for inp in (i for i in graph.input if i.name not in initializers):
        dims = inp.type.tensor_type.shape.dim
        for axis, dim in list(enumerate(dims))[1:]:
            if dim.dim_param or dim.dim_value <= 0:
                name = dim.dim_param or "?"
                raise EdgepruneError(f"{path}: input '{inp.name}' has a dynamic size '{name}' on axis {axis}; "
                                     "only the batch axis may vary",
                                     "export it with a fixed input shape (edgeprune export does)")


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
    # LiteRT loads only when a .tflite file is run or read: the CLI imports this module
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
    # onnxruntime loads only when an ONNX file is run: the CLI imports this module
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
    check_exported_file(path)
    try:
        return target.predict(path, x, batch_size, num_threads)
    except EdgepruneError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EdgepruneError(f"cannot run {path.name}: {first}", "re-export the model; check input shape and dtype") from err


# ops that do a layer's arithmetic: their input type says which precision that layer runs in
COMPUTE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}


def tflite_compute_ops(path) -> list[dict]:
    """Each conv / fully-connected op of a .tflite file: op name, output and weight tensor names, and
    the element types of its input and weights (``int8`` ops run integer kernels, ``float32`` float ones)."""
    # LiteRT loads only when a .tflite file is run or read: the CLI imports this module
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():  # noqa: SLF001 (no public op list)
        if op["op_name"] not in COMPUTE_OPS:
            continue
        ins = [tensors[i] for i in op["inputs"] if i >= 0]
        ops.append({"op": op["op_name"], "output": tensors[op["outputs"][0]]["name"],
                    "weights": ins[1]["name"] if len(ins) > 1 else None,
                    "input_dtype": np.dtype(ins[0]["dtype"]).name,
                    "weight_dtype": np.dtype(ins[1]["dtype"]).name if len(ins) > 1 else None})
    return ops


def tflite_quant_mode(path) -> str:
    """'int8' (full integer), 'mixed' (integer with some conv/dense ops float), 'dynamic' (int8
    weights only), 'fp16', 'sparse' (float32 with weights stored sparse) or 'none', read from the file."""
    # LiteRT loads only when a .tflite file is run or read: the CLI imports this module
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    io = interp.get_input_details() + interp.get_output_details()
    ops = {op["op_name"] for op in interp._get_ops_details()}  # noqa: SLF001 (no public op list)
    if "QUANTIZE" in ops or any(np.issubdtype(d["dtype"], np.integer) and d["quantization"][0] for d in io):
        float_ops = [op for op in tflite_compute_ops(path) if op["input_dtype"] == "float32"]
        return "mixed" if float_ops else "int8"
    dtypes = {np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    if np.dtype(np.int8) in dtypes:
        return "dynamic"
    if np.dtype(np.float16) in dtypes:
        return "fp16"
    if "DENSIFY" in ops:  # float32 weights stored sparse (precision sparse)
        return "sparse"
    return "none"


def onnx_quant_mode(path) -> str:
    # onnx loads only when an ONNX file is read: the CLI imports this module
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    return "int8" if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"} else "none"


def quant_mode(path) -> str:
    """The file's precision, read back from the file by its target."""
    return target_for_file(path).read_precision(path)
