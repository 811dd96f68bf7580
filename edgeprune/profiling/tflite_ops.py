"""Read a .tflite file's operators and cut each one out as a model of its own.

An isolated op keeps everything the runtime sees in the whole model: the same op, options, tensor
shapes, element types, weights and quantization parameters (an int8 op keeps the scales that
calibration on real data gave it).  Constant weights reached through a DEQUANTIZE (float16 files)
travel with their op, since the runtime folds them the same way in both.  An op's *signature* is
everything that can change its cost but not the weight values; the cost table is keyed by it.
"""
from __future__ import annotations

import copy as copy_module
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from edgeprune.errors import EdgepruneError

# TensorType enum → numpy dtype (the types our exports use)
NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


def schema():
    # LiteRT loads only when a .tflite file is read: the CLI imports this module
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _builtin_names() -> dict[int, str]:
    op = schema().BuiltinOperator
    return {v: k for k, v in vars(op).items() if not k.startswith("_") and isinstance(v, int)}


def read_model(data: bytes):
    """The flatbuffer as a mutable object tree (``ModelT``)."""
    s = schema()
    try:
        return s.ModelT.InitFromObj(s.Model.GetRootAsModel(bytearray(data), 0))
    except Exception as e:  # a truncated or foreign file fails deep inside flatbuffers
        raise EdgepruneError(f"not a readable TFLite flatbuffer ({type(e).__name__})",
                             "pass a .tflite file written by edgeprune export or the TFLite converter") from None


def write_model(model) -> bytes:
    # flatbuffers only to write a file: the CLI and plan validation import this module
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def opcode_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema().BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"
    return _builtin_names().get(builtin, str(builtin))


def tensor_name(t) -> str:
    return t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")


def is_const(model, t) -> bool:
    buf = model.buffers[t.buffer] if 0 <= t.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def _quant_kind(t) -> str:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return "none"
    return "per_channel" if len(q.scale) > 1 else "per_tensor"


def _options(op) -> dict:
    o = op.builtinOptions
    if o is None:
        return {}
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sorted(vars(o).items())
            if isinstance(v, (int, float, bool, str, list, np.ndarray)) or v is None}


@dataclass
class OpUnit:
    """One operator of a model plus the const-weight DEQUANTIZE ops that feed it."""

    index: int                      # the operator's position in subgraph 0
    op: str                         # e.g. CONV_2D
    ops: list[int]                  # operator indices in the unit (feeders first, then `index`)
    inputs: list[int]               # activation tensors entering the unit (become the isolated model's inputs)
    outputs: list[int]
    names: list[str] = field(default_factory=list)  # tensor names the unit writes or reads (for labels)


def op_units(model) -> list[OpUnit]:
    """The model's operators in execution order, each with its const-weight feeders."""
    sg = model.subgraphs[0]
    producer = {}
    for i, op in enumerate(sg.operators):
        for t in op.outputs:
            producer[int(t)] = i
    folded = set()
    for i, op in enumerate(sg.operators):
        if opcode_name(model, op) == "DEQUANTIZE" and all(is_const(model, sg.tensors[t]) for t in op.inputs if t >= 0):
            folded.add(i)
    units = []
    for i, op in enumerate(sg.operators):
        if i in folded:
            continue
        feeders = [producer[int(t)] for t in op.inputs if t >= 0 and producer.get(int(t)) in folded]
        inputs = [int(t) for t in op.inputs if t >= 0 and producer.get(int(t)) not in folded
                  and not is_const(model, sg.tensors[t])]
        # outputs, then weights, then activations: a model's last op writes a tensor named after the
        # signature (StatefulPartitionedCall:0), and its activation input is named after the layer before
        consts = [t for t in op.inputs if t >= 0 and (is_const(model, sg.tensors[t]) or producer.get(int(t)) in folded)]
        order = list(op.outputs) + consts + [t for t in op.inputs if t >= 0 and t not in consts]
        names = [tensor_name(sg.tensors[t]) for t in order]
        units.append(OpUnit(i, opcode_name(model, op), feeders + [i], inputs, [int(t) for t in op.outputs], names))
    return units


def _tensor_sig(model, t, shape=None) -> list:
    return [list(map(int, t.shape if shape is None else shape)), int(t.type), is_const(model, t), _quant_kind(t)]


def unit_signature(model, unit: OpUnit) -> str:
    """Hash of what decides the unit's cost: ops, versions, options, shapes, types, quantization kinds."""
    sg = model.subgraphs[0]
    parts = []
    for i in unit.ops:
        op = sg.operators[i]
        code = model.operatorCodes[op.opcodeIndex]
        parts.append({"op": opcode_name(model, op), "version": int(code.version), "options": _options(op),
                      "in": [_tensor_sig(model, sg.tensors[t]) if t >= 0 else None for t in op.inputs],
                      "out": [_tensor_sig(model, sg.tensors[t]) for t in op.outputs]})
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


INTEGER_TYPES = (2, 4)  # INT32, INT64: shapes, sizes, axes, indices


def integer_values(model) -> dict[int, np.ndarray]:
    """The values the computed int32/int64 tensors of subgraph 0 take in a batch-1 run of the model.

    They are shapes, sizes and indices (a Keras 3 Flatten's SHAPE → STRIDED_SLICE → PACK chain
    feeding RESHAPE, a dynamic batch's sizes): an op cut out alone needs their real values, not
    random ones, and they do not depend on the input's values.  Cached on the model object."""
    cached = getattr(model, "_edgeprune_integer_values", None)
    if cached is not None:
        return cached
    sg = model.subgraphs[0]
    graph_inputs = {int(t) for t in sg.inputs}
    wanted = [i for i, t in enumerate(sg.tensors)
              if t.type in INTEGER_TYPES and i not in graph_inputs and not is_const(model, t)]
    values: dict[int, np.ndarray] = {}
    if wanted:
        # LiteRT loads only when a file is run: the CLI imports this module
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:  # no XNNPACK: it would hide the intermediate tensors (and log a line)
            it = Interpreter(model_content=write_model(model), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()  # a dynamic batch (shape_signature -1) is stored as 1
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            it.invoke()
        except (RuntimeError, ValueError) as e:
            raise EdgepruneError(f"cannot run this .tflite on the host to read its shape tensors ({e})".replace("\n", " "),
                                 "check that the file runs: edgeprune bench FILE --device host") from None
        for i in wanted:
            try:
                values[i] = np.array(it.get_tensor(i))
            except ValueError:  # not materialised (e.g. an unused output): leave it an input
                pass
    model._edgeprune_integer_values = values
    return values


def isolate(model, unit: OpUnit) -> bytes:
    """A model holding only `unit`: its activation inputs become the model's inputs.

    Computed integer inputs (shapes, sizes, indices) become constants holding the values they have
    in the whole model (:func:`integer_values`), so the op does exactly the work it does there."""
    s = schema()
    sg = model.subgraphs[0]
    known = {t: v for t, v in integer_values(model).items() if t in set(unit.inputs)} if any(
        sg.tensors[t].type in INTEGER_TYPES for t in unit.inputs) else {}
    new = s.ModelT()
    new.version = model.version
    new.description = b"edgeprune isolated op"
    new.buffers = [s.BufferT()]  # buffer 0: the empty sentinel
    new.operatorCodes = []
    code_index: dict[int, int] = {}
    tensor_index: dict[int, int] = {}
    nsg = s.SubGraphT()
    nsg.tensors, nsg.operators = [], []

    def add_tensor(t: int) -> int:
        if t < 0:
            return t
        if t not in tensor_index:
            old = sg.tensors[t]
            copy = copy_module.deepcopy(old)
            if is_const(model, old):
                buf = s.BufferT()
                buf.data = model.buffers[old.buffer].data
                new.buffers.append(buf)
                copy.buffer = len(new.buffers) - 1
            elif t in known:
                value = np.array(known[t], dtype=NUMPY_TYPES[old.type])  # (ascontiguousarray makes a scalar 1-d)
                buf = s.BufferT()
                buf.data = np.frombuffer(value.tobytes(), dtype=np.uint8)
                new.buffers.append(buf)
                copy.buffer = len(new.buffers) - 1
                if value.ndim:  # a scalar keeps its (empty) shape
                    copy.shape = np.array(value.shape, dtype=np.int32)
                copy.shapeSignature = None
            else:
                new.buffers.append(s.BufferT())
                copy.buffer = len(new.buffers) - 1
            nsg.tensors.append(copy)
            tensor_index[t] = len(nsg.tensors) - 1
        return tensor_index[t]

    for i in unit.ops:
        op = sg.operators[i]
        if op.opcodeIndex not in code_index:
            new.operatorCodes.append(model.operatorCodes[op.opcodeIndex])
            code_index[op.opcodeIndex] = len(new.operatorCodes) - 1
        nop = s.OperatorT()
        for attr in ("builtinOptionsType", "builtinOptions", "customOptions", "customOptionsFormat",
                     "builtinOptions2Type", "builtinOptions2"):
            if hasattr(op, attr):
                setattr(nop, attr, getattr(op, attr))
        nop.opcodeIndex = code_index[op.opcodeIndex]
        nop.inputs = [add_tensor(int(t)) for t in op.inputs]
        nop.outputs = [add_tensor(int(t)) for t in op.outputs]
        nsg.operators.append(nop)
    nsg.inputs = [tensor_index[t] for t in unit.inputs if t not in known]
    nsg.outputs = [tensor_index[t] for t in unit.outputs]
    nsg.name = b"main"
    new.subgraphs = [nsg]
    return write_model(new)


def empty_model(like_model=None) -> bytes:
    """A model with no operators (its input is its output): what one invoke costs with nothing to do."""
    s = schema()
    new = s.ModelT()
    new.version = 3
    new.description = b"edgeprune empty model"
    new.buffers = [s.BufferT(), s.BufferT()]
    t = s.TensorT()
    t.shape = np.array([1, 1], dtype=np.int32)
    t.type = 0
    t.buffer = 1
    t.name = b"x"
    sg = s.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs, sg.name = [t], [], [0], [0], b"main"
    new.subgraphs = [sg]
    new.operatorCodes = []
    return write_model(new)
