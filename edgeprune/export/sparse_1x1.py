"""Does a .tflite file qualify for XNNPACK's sparse 1×1 path?  One short reason per failed condition.

XNNPACK (the default LiteRT delegate on ARM) runs a float model "sparse" only when it can rewrite a region
of the graph to NCHW, from the stem to a global average pool, and the 1×1 conv weights of that region are
mostly zero.  Measured on the emulated Cortex-A72 / A76 with ai-edge-litert 2.3.0 (bench/SPARSE_1X1.md): it
engages with no flag when all four conditions hold, and then a MobileNetV2 0.35 runs 1.6–2.1× (A72) and
1.2–1.7× (A76) faster at 70–90 % zeros; when one fails, the sparse file costs exactly what the dense one does.

The rules below follow the sources that note cites (XNNPACK @75db3c0, LiteRT @f674577):

1. **storage** — the converter stores the 1×1 kernels sparse (``Optimize.EXPERIMENTAL_SPARSITY`` → ``DENSIFY``
   ops); the delegate then sets ``XNN_FLAG_HINT_SPARSE_INFERENCE`` (``xnnpack_delegate.cc`` l. 1067–1089, 7375).
   A dense file gets no hint, whatever its zeros.
2. **precision** — every value of the region must be fp32 or fp16 (``src/subgraph.c`` ``all_values_fp``):
   int8 / dynamic-range files never take the path.
3. **sparsity** — over the region's 1×1 convs (and fully-connected ops) together, zeros × 3 > weights × 2
   (``subgraph.c`` l. 935): more than 2/3 zero, counted over the whole region, not per layer.
4. **graph** — ``xnn_check_nchw_compatibility`` (``subgraph.c`` l. 404–689) and the cluster walk (l. 711–870):
   the region grows backwards from a global pool (MEAN/SUM over a 4-D tensor; the NCHW→NHWC exit) through
   1×1 convs (stride 1, no padding), 3×3/5×5 depthwise convs (stride 1 or 2, padding exactly k//2 on every
   side, no TF SAME flag, multiplier 1), add/mul, unary activations, bilinear resize, and must stop at a stem:
   a 3×3 stride-2 conv on 3 input channels with padding 1 on every side.  Any other producer, or the model
   input reached without a stem, or a value also used outside the region, rules the whole region out.
   TF SAME padding is made explicit only at stride 1 (``convolution-2d.c`` l. 1137, ``depthwise-convolution-2d.c``
   l. 815), so a SAME stride-2 stem or depthwise conv fails; a zero ``PAD`` before a VALID conv is fused into its
   padding (``subgraph.c`` l. 1599–1660), which is how ZeroPadding2D(1) + ``padding='valid'`` passes.  Keras'
   MobileNetV2 fails here: its ``ZeroPadding2D(((0, 1), (0, 1)))`` + VALID is folded to SAME by the converter.

This module reads the flatbuffer only (LiteRT's schema); it runs nothing and imports no TensorFlow.
"""
from __future__ import annotations

import re

import numpy as np

from edgeprune.errors import EdgepruneError

NEEDED_ZERO_FRACTION = 2 / 3
STORED_DENSE = "1×1 kernels are stored dense"  # the storage reason starts so (a float32 file's only expected one)

# TFLite ops XNNPACK lowers to a unary elementwise node (NCHW-compatible on a 4-D input)
UNARY_OPS = frozenset({
    "ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "HARD_SWISH", "LEAKY_RELU", "LOG", "LOGISTIC", "NEG",
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "ROUND", "RSQRT", "SIGN", "SIN", "SQRT", "SQUARE", "TANH",
})
BINARY_OPS = frozenset({"ADD", "MUL"})
POOL_EXITS = frozenset({"MEAN", "SUM"})  # global pool: the NCHW region's exit (and its grower)
WEIGHT_FEEDERS = frozenset({"DENSIFY", "DEQUANTIZE"})
ALLOWED = ("1×1 convs, 3×3/5×5 depthwise convs, add, mul, unary activations and the global pool")

FLOAT_TYPES = (0, 1)  # TensorType FLOAT32, FLOAT16
NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
SAME, VALID = 0, 1  # schema Padding


def _schema():
    # LiteRT loads only when a file is checked: the export target module imports this one
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


class _Graph:
    """Subgraph 0 of a flatbuffer with the lookups the check needs."""

    def __init__(self, data: bytes):
        s = _schema()
        try:
            self.m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(bytearray(data), 0))
        except Exception as e:  # a truncated or foreign file fails deep inside flatbuffers
            raise EdgepruneError(f"not a readable TFLite flatbuffer ({type(e).__name__})",
                                 "pass a .tflite file written by edgeprune export or the TFLite converter") from None
        names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
        self.sg = self.m.subgraphs[0]
        self.ops = []
        for op in self.sg.operators:
            code = self.m.operatorCodes[op.opcodeIndex]
            self.ops.append(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"))
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for i, op in enumerate(self.sg.operators):
            for t in op.outputs:
                self.producer[int(t)] = i
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(int(t), []).append(i)
        self.graph_inputs = {int(t) for t in self.sg.inputs}

    def tensor(self, t: int):
        return self.sg.tensors[t]

    def const_data(self, t: int):
        tensor = self.sg.tensors[t]
        buf = self.m.buffers[tensor.buffer] if 0 <= tensor.buffer < len(self.m.buffers) else None
        return None if buf is None or buf.data is None or len(buf.data) == 0 else buf.data

    def weight(self, t: int) -> tuple[int, bool]:
        """(the constant tensor behind activation-free input `t`, stored sparse?), through DENSIFY/DEQUANTIZE;
        (-1, False) when `t` is computed from activations."""
        while self.const_data(t) is None:
            p = self.producer.get(t)
            if p is None or self.ops[p] not in WEIGHT_FEEDERS:
                return -1, False
            t = int(self.sg.operators[p].inputs[0])
        return t, self.sg.tensors[t].sparsity is not None

    def is_static(self, t: int) -> bool:
        return self.weight(t)[0] >= 0

    def shape(self, t: int) -> list[int]:
        return [int(d) for d in self.sg.tensors[t].shape]

    def activations(self, i: int) -> list[int]:
        return [int(t) for t in self.sg.operators[i].inputs if t >= 0 and not self.is_static(int(t))]

    def label(self, i: int) -> str:
        """The Keras layer an op came from, read from its tensor names (``model/block_3_depthwise/depthwise``)."""
        op = self.sg.operators[i]
        names = [_name(self.sg.tensors[t]) for t in list(op.outputs) + [t for t in op.inputs if t >= 0]]
        want = {"CONV_2D": ("Conv2D", "convolution"), "DEPTHWISE_CONV_2D": ("depthwise", "convolution"),
                "FULLY_CONNECTED": ("MatMul",), "PAD": ("Pad",)}.get(self.ops[i], ())
        found = []
        for name in names:
            for seg in name.split(";"):
                parts = [p for p in seg.split("/") if p]
                if len(parts) >= 2:
                    found.append((re.sub(r"\d+$", "", parts[-1]), parts[-2]))
        for kind, layer in found:
            if kind in want:
                return layer
        return found[0][1] if found else (names[0] if names else f"op {i}")


def _name(t) -> str:
    return t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")


def _conv_geometry(g: _Graph, i: int, pad: tuple[int, int, int, int]) -> dict:
    """Kernel, stride, dilation and XNNPACK's padding (top, right, bottom, left) of a conv/depthwise op."""
    op = g.sg.operators[i]
    o = op.builtinOptions
    k = g.shape(int(op.inputs[1]))  # conv: [O, KH, KW, I]; depthwise: [1, KH, KW, C·M]
    kh, kw = k[1], k[2]
    same = o.padding == SAME
    stride, dilation = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
    if same and stride == (1, 1) and dilation == (1, 1):  # XNNPACK makes stride-1 SAME explicit
        extra = ((kh - 1) // 2, kw - 1 - (kw - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2)
        pad = tuple(a + b for a, b in zip(pad, extra))
        same = False
    elif same:
        pad = (0, 0, 0, 0)  # SAME at stride 2 keeps its flag and zero explicit padding
    cin = g.shape(int(op.inputs[0]))[-1] if g.shape(int(op.inputs[0])) else 0
    return {"k": (kh, kw), "stride": stride, "dilation": dilation, "same": same, "pad": pad, "cin": cin,
            "multiplier": getattr(o, "depthMultiplier", 1) or 1}


def _fused_pad(g: _Graph, i: int) -> tuple[tuple[int, int, int, int], int]:
    """(padding a zero PAD feeding conv `i` adds, the tensor the conv then reads) — XNNPACK fuses a constant
    zero PAD of H/W only, used by this conv alone, into a conv without the SAME flag."""
    op = g.sg.operators[i]
    x = int(op.inputs[0])
    p = g.producer.get(x)
    if p is None or g.ops[p] not in ("PAD", "PADV2") or len(g.consumers.get(x, [])) != 1:
        return (0, 0, 0, 0), x
    o = op.builtinOptions
    if o.padding == SAME and (o.strideH, o.strideW) != (1, 1):  # the SAME flag blocks the fusion
        return (0, 0, 0, 0), x
    pad_op = g.sg.operators[p]
    data = g.const_data(int(pad_op.inputs[1]))
    if data is None:
        return (0, 0, 0, 0), x
    pads = np.frombuffer(bytes(data), dtype=NUMPY_TYPES.get(g.tensor(int(pad_op.inputs[1])).type, np.int32)).reshape(-1, 2)
    if g.ops[p] == "PADV2" and len(pad_op.inputs) > 2:
        value = g.const_data(int(pad_op.inputs[2]))
        if value is None or np.any(np.frombuffer(bytes(value), dtype=np.float32) != 0):
            return (0, 0, 0, 0), x
    if pads.shape[0] != 4 or pads[0].any() or pads[3].any():
        return (0, 0, 0, 0), x
    return (int(pads[1][0]), int(pads[2][1]), int(pads[1][1]), int(pads[2][0])), int(pad_op.inputs[0])


def _pads(p) -> str:
    return f"(top, right, bottom, left) = {tuple(p)}"


def _classify(g: _Graph, i: int) -> tuple[str, str | None, int]:
    """(role, reason it fails, the activation tensor it reads after PAD fusion) of op `i` inside the region.
    role: ``nchw`` (grows the region), ``stem`` (enters it), ``exit`` (global pool), ``no``."""
    op, kind = g.sg.operators[i], g.ops[i]
    name = g.label(i)
    if kind == "CONV_2D":
        pad, x = _fused_pad(g, i)
        c = _conv_geometry(g, i, pad)
        if c["dilation"] != (1, 1):
            return "no", f"conv '{name}' is dilated {c['dilation']} (XNNPACK's sparse path takes no dilation)", x
        if c["k"] == (1, 1):
            if c["stride"] != (1, 1):
                return "no", f"1×1 conv '{name}' has stride {c['stride'][0]} (only stride 1 runs NCHW)", x
            if any(c["pad"]):
                return "no", f"1×1 conv '{name}' is padded {_pads(c['pad'])} (no padding runs NCHW)", x
            return "nchw", None, x
        if c["k"] != (3, 3):
            return "no", (f"conv '{name}' is {c['k'][0]}×{c['k'][1]} (only 1×1 convs, and a 3×3 stride-2 stem "
                          f"on 3 channels, run NCHW)"), x
        if c["same"] and c["stride"] != (1, 1):
            return "no", (f"stem '{name}' is stride-{c['stride'][0]} with SAME padding (XNNPACK's sparse path needs "
                          f"explicit symmetric padding: ZeroPadding2D(1) + padding='valid')"), x
        if c["stride"] != (2, 2):
            return "no", f"stem '{name}' has stride {c['stride'][0]} (XNNPACK's sparse path needs a 3×3 stride-2 stem)", x
        if c["pad"] != (1, 1, 1, 1):
            return "no", (f"stem '{name}' is padded {_pads(c['pad'])} (XNNPACK's sparse path needs explicit "
                          f"symmetric padding 1: ZeroPadding2D(1) + padding='valid')"), x
        if c["cin"] != 3:
            return "no", (f"stem '{name}' takes {c['cin']} input channels (XNNPACK's sparse path needs a 3-channel "
                          f"stem)"), x
        return "stem", None, x
    if kind == "DEPTHWISE_CONV_2D":
        pad, x = _fused_pad(g, i)
        c = _conv_geometry(g, i, pad)
        s = c["stride"]
        if c["dilation"] != (1, 1):
            return "no", f"depthwise '{name}' is dilated {c['dilation']} (XNNPACK's sparse path takes no dilation)", x
        if c["same"]:
            return "no", (f"depthwise '{name}' is stride-{s[0]} with SAME padding (XNNPACK's sparse path needs "
                          f"explicit symmetric padding: ZeroPadding2D({c['k'][0] // 2}) + padding='valid'; the converter "
                          f"folds ZeroPadding2D(((0, 1), (0, 1))) + 'valid' into SAME)"), x
        if c["multiplier"] != 1:
            return "no", f"depthwise '{name}' has depth multiplier {c['multiplier']} (only 1 runs NCHW)", x
        if s[0] != s[1] or s[0] not in (1, 2):
            return "no", f"depthwise '{name}' has stride {s} (only 1 or 2, equal in both axes, runs NCHW)", x
        if c["k"] not in ((3, 3), (5, 5)):
            return "no", f"depthwise '{name}' is {c['k'][0]}×{c['k'][1]} (only 3×3 and 5×5 run NCHW)", x
        want = c["k"][0] // 2
        if c["pad"] != (want,) * 4:
            return "no", (f"depthwise '{name}' is padded {_pads(c['pad'])} (XNNPACK's sparse path needs {want} on "
                          f"every side: ZeroPadding2D({want}) + padding='valid', or 'same' at stride 1)"), x
        return "nchw", None, x
    acts = g.activations(i)
    x = acts[0] if acts else -1
    four_d = all(len(g.shape(t)) == 4 for t in acts)
    if kind in POOL_EXITS:
        return ("exit", None, x) if four_d else ("no", f"{kind.lower()} '{name}' is not over a 4-D tensor", x)
    if kind in BINARY_OPS:
        if len(g.shape(int(op.inputs[0]))) != 4 or len(g.shape(int(op.inputs[1]))) != 4:
            return "no", f"{kind.lower()} '{name}' is not on two 4-D tensors (XNNPACK's sparse path needs them)", x
        for t in op.inputs:
            if g.is_static(int(t)) and sum(d != 1 for d in g.shape(int(t))) > 1:
                return "no", f"{kind.lower()} '{name}' has a constant that is neither a scalar nor a vector", x
        return "nchw", None, x
    if kind in UNARY_OPS:
        return ("nchw", None, x) if four_d else ("no", f"{kind} '{name}' is not on a 4-D tensor", x)
    if kind == "RESIZE_BILINEAR":
        hw = g.shape(x)[1:3] if x >= 0 else []
        return ("nchw", None, x) if len(hw) == 2 and min(hw) > 1 else ("no", f"resize '{name}' from 1 pixel", x)
    if kind == "FULLY_CONNECTED":
        return "nchw", None, x
    if kind == "DEPTH_TO_SPACE":
        return "no", f"DEPTH_TO_SPACE '{name}' inside the region (it only ends one)", x
    return "no", f"{kind} '{name}' lies between the stem and the global pool (XNNPACK runs NCHW only {ALLOWED})", x


def _region(g: _Graph, exit_op: int, quantized: bool) -> dict:
    """Walk back from a global pool as XNNPACK's cluster walk does; collect every reason instead of stopping."""
    reasons: list[tuple[int, str]] = []  # (op index, reason): reported in graph order, stem first
    members: set[int] = {exit_op}
    reads: dict[int, list[int]] = {}  # member op -> activation tensors it reads (after PAD fusion)
    stack = [exit_op]
    while stack:
        i = stack.pop()
        role, reason, x = _classify(g, i)
        if reason:
            reasons.append((i, reason))
        tensors = [x] if g.ops[i] in ("CONV_2D", "DEPTHWISE_CONV_2D") else g.activations(i)
        if role == "stem":
            continue  # the region's entry: XNNPACK neither walks past it nor checks its input's other readers
        reads[i] = tensors
        for t in tensors:
            if t < 0:
                continue
            p = g.producer.get(t)
            if quantized:  # int8 files: step over activation (de)quantize ops (the precision reason says it)
                while p is not None and g.ops[p] in ("QUANTIZE", "DEQUANTIZE") and g.activations(p):
                    t = g.activations(p)[0]
                    p = g.producer.get(t)
            if p is None:
                if role == "no" and g.ops[i] == "CONV_2D":
                    continue  # a stem that fails says why itself
                who = g.label(i) if i != exit_op else g.ops[i].lower()
                reasons.append((i, f"the model input reaches '{who}' without a stem (XNNPACK's sparse path starts at a "
                                   f"3×3 stride-2 conv on 3 channels with padding 1)"))
                continue
            if p not in members:
                members.add(p)
                stack.append(p)
    for i in members:
        for t in reads.get(i, []):
            outside = [c for c in g.consumers.get(t, []) if c not in members and g.ops[c] not in ("PAD", "PADV2")]
            if t >= 0 and outside:
                reasons.append((i, f"'{g.label(g.producer.get(t, i))}' is also read by {g.ops[outside[0]]} "
                                   f"'{g.label(outside[0])}' outside the NCHW region"))
    params = zeros = 0
    stored_sparse = False
    pointwise = 0
    for i in sorted(members):
        op = g.sg.operators[i]
        if g.ops[i] not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2:
            continue
        k = g.shape(int(op.inputs[1]))
        if g.ops[i] == "CONV_2D" and (len(k) != 4 or k[1] != 1 or k[2] != 1):
            continue
        w, sparse = g.weight(int(op.inputs[1]))
        if w < 0:
            continue
        pointwise += g.ops[i] == "CONV_2D"
        n = int(np.prod(k))
        values = np.frombuffer(bytes(g.const_data(w)), dtype=NUMPY_TYPES.get(g.tensor(w).type, np.float32))
        params += n
        zeros += n - int(np.count_nonzero(values))
        stored_sparse |= sparse
    return {"reasons": list(dict.fromkeys(r for _, r in sorted(reasons))), "params": params, "zeros": zeros, "pointwise": pointwise,
            "stored_sparse": stored_sparse}


def _precision(g: _Graph) -> str | None:
    """The reason a file is not float, or None."""
    for i, kind in enumerate(g.ops):
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        op = g.sg.operators[i]
        w, _ = g.weight(int(op.inputs[1]))
        types = {g.tensor(int(op.inputs[0])).type} | ({g.tensor(w).type} if w >= 0 else set())
        if not types <= set(FLOAT_TYPES):
            return "int8 weights (the sparse path is float only: export float32 or float16)"
    return None


def _percent(zeros: int, params: int) -> str:
    pct = 100.0 * zeros / params
    return f"{pct:.0f}%" if pct < 66.5 else f"{pct:.1f}%"


def sparse_1x1_problems(tflite_bytes: bytes) -> list[str]:
    """One short reason per failed condition (storage, precision, sparsity, graph), naming the op's layer;
    an empty list when XNNPACK's sparse 1×1 path can run this file.  See the module docstring for the rules."""
    g = _Graph(bytes(tflite_bytes))
    reasons = []
    precision = _precision(g)
    if precision:
        reasons.append(precision)
    exits = [i for i, kind in enumerate(g.ops) if kind in POOL_EXITS]
    if not exits:
        return reasons + ["no global average pool (MEAN over height and width): XNNPACK's NCHW region ends only "
                          "at one, so the sparse path never starts"]
    regions = [_region(g, i, quantized=bool(precision)) for i in exits]
    # the region with the most 1×1 weights is the one that matters (usually the only one)
    best = max(regions, key=lambda r: (r["params"], -len(r["reasons"])))
    if not best["pointwise"]:
        return reasons + best["reasons"] + ["no 1×1 conv between the stem and the global pool"]
    if not best["stored_sparse"]:
        reasons.append(f"{STORED_DENSE} (export precision 'sparse': "
                       "tf.lite.Optimize.EXPERIMENTAL_SPARSITY)")
    if best["zeros"] * 3 <= best["params"] * 2:
        reasons.append(f"1×1 kernels are {_percent(best['zeros'], best['params'])} zero "
                       f"(more than {100 * NEEDED_ZERO_FRACTION:.0f}% needed, over all of them together)")
    return reasons + best["reasons"]


def pointwise_zero_fraction(tflite_bytes: bytes) -> float:
    """Zeros over weights of every 1×1 conv in the file (0.0 when it has none)."""
    g = _Graph(bytes(tflite_bytes))
    params = zeros = 0
    for i, kind in enumerate(g.ops):
        op = g.sg.operators[i]
        if kind != "CONV_2D":
            continue
        k = g.shape(int(op.inputs[1]))
        w, _ = g.weight(int(op.inputs[1]))
        if len(k) != 4 or k[1] != 1 or k[2] != 1 or w < 0:
            continue
        values = np.frombuffer(bytes(g.const_data(w)), dtype=NUMPY_TYPES.get(g.tensor(w).type, np.float32))
        params += int(np.prod(k))
        zeros += int(np.prod(k)) - int(np.count_nonzero(values))
    return zeros / params if params else 0.0


class SparseNotUsable(EdgepruneError):
    """A ``sparse`` export XNNPACK would run dense: the file would cost what the float32 one does."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("precision sparse would not run sparse on XNNPACK: " + "; ".join(self.problems),
                         "make the model qualify (docs/precision.md, 'Sparse 1×1 convs'), or export float32")


def check_sparse(tflite_bytes: bytes) -> None:
    """Raise :class:`SparseNotUsable` with the reasons when XNNPACK's sparse path cannot run this file."""
    problems = sparse_1x1_problems(tflite_bytes)
    others = [p for p in problems if not p.startswith(STORED_DENSE)]
    if others:  # the converter stores sparse only kernels with zeros enough: the other reasons say why
        raise SparseNotUsable(others)
    if problems:
        raise SparseNotUsable([f"{STORED_DENSE} (the converter kept them dense)"])
