"""The exported model as it would be with fewer channels, without converting it again.

Given the template (.tflite of the unpruned model) and which channel classes a candidate removes,
every activation tensor takes the shape of the Keras tensor it came from (read from the channel
graph: a tensor keeps the positions whose atoms survive), and every op's weights, biases, per-channel
scales and reshape targets are cut to match.  The ops keep their real options, element types and
quantization.  So a search can ask for the cost of thousands of channel counts while the converter
runs once; a test checks that the ops predicted here have the signatures of a real export.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from edgeprune.profiling.tflite_ops import NUMPY_TYPES, is_const, op_units, opcode_name, tensor_name, unit_signature

SAME_SHAPE_OPS = {"QUANTIZE", "DEQUANTIZE", "SOFTMAX", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH",
                  "HARD_SWISH", "LEAKY_RELU", "PRELU", "ABS", "NEG", "SQUARE", "SQRT", "RSQRT", "EXP", "LOG",
                  "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "CAST", "GELU", "ELU"}


@dataclass
class KerasShapes:
    """Per Keras layer: its output shape in the unpruned model, and a function of the removed classes."""

    layers: dict  # layer name -> (original shape without batch, atoms of its output)

    @classmethod
    def from_graph(cls, g) -> "KerasShapes":
        layers = {}
        for node in g.nodes:
            if node.outputs and node.layer not in layers and node.output_shapes:
                key = node.outputs[0]
                atoms = g.atoms_of.get(key)
                if atoms is not None:
                    classes = np.asarray([g.cls(int(a)) for a in atoms], dtype=np.int64)
                    layers[node.layer] = (tuple(node.output_shapes[0][1:]), classes)
        return cls(layers)

    def shape(self, layer: str, removed: np.ndarray) -> tuple:
        shape, classes = self.layers[layer]
        kept = int(np.count_nonzero(~np.isin(classes, removed))) if len(removed) else len(classes)
        return (*shape[:-1], kept)


def unshare_constants(model):
    """`model` with a constant tensor and buffer of its own for every op input.

    The converter shares identical constants (two all-zero biases, say) between ops; cutting one op's
    channels must leave the other's shapes alone.  The copies add the bytes of those few duplicates.
    """
    sg = model.subgraphs[0]
    sg.tensors, model.buffers = list(sg.tensors), list(model.buffers)
    seen_tensors, seen_buffers = set(), set()
    for op in sg.operators:
        ins = [int(t) for t in op.inputs]
        for k, t in enumerate(ins):
            if t < 0 or not is_const(model, sg.tensors[t]):
                continue
            tensor = sg.tensors[t]
            if t in seen_tensors or int(tensor.buffer) in seen_buffers:
                tensor = copy.copy(tensor)
                tensor.buffer = len(model.buffers)
                model.buffers.append(copy.copy(model.buffers[int(sg.tensors[t].buffer)]))
                sg.tensors.append(tensor)
                ins[k] = len(sg.tensors) - 1
            seen_tensors.add(ins[k])
            seen_buffers.add(int(tensor.buffer))
        op.inputs = np.asarray(ins, dtype=np.int32)
    return model


class Variants:
    """Candidate models from one template: ``candidate(removed_classes)`` → a model object tree."""

    def __init__(self, template, g):
        self.template = unshare_constants(template)
        self.units = op_units(template)
        self.keras = KerasShapes.from_graph(g)
        sg = template.subgraphs[0]
        self.producer = {int(t): i for i, op in enumerate(sg.operators) for t in op.outputs}
        self.layer_of = {}  # tflite tensor -> keras layer (where the shapes agree)
        for i, t in enumerate(sg.tensors):
            if is_const(template, t):
                continue
            layer = self._match(tensor_name(t), tuple(int(d) for d in t.shape[1:]))
            if layer:
                self.layer_of[i] = layer

    def _match(self, name: str, shape: tuple) -> str | None:
        for part in name.split(";"):
            for comp in part.split("/"):
                entry = self.keras.layers.get(comp)
                if entry and tuple(entry[0]) == shape:
                    return comp
        return None

    # -- shapes ----------------------------------------------------------------------------------

    def activation_shapes(self, removed) -> dict[int, tuple]:
        """New shape of every activation tensor the channel graph reaches (others keep theirs)."""
        removed = np.asarray(sorted(removed), dtype=np.int64)
        sg = self.template.subgraphs[0]
        shapes = {t: (int(sg.tensors[t].shape[0]), *self.keras.shape(layer, removed))
                  for t, layer in self.layer_of.items()}
        for _ in range(2):  # forward, then again for chains of same-shape ops
            for op in sg.operators:
                if opcode_name(self.template, op) not in SAME_SHAPE_OPS:
                    continue
                acts = [int(t) for t in op.inputs if t >= 0 and not is_const(self.template, sg.tensors[t])]
                for out in op.outputs:
                    out = int(out)
                    src = next((t for t in acts if t in shapes and
                                list(sg.tensors[t].shape) == list(sg.tensors[out].shape)), None)
                    if out not in shapes and src is not None:
                        shapes[out] = shapes[src]
                    elif out in shapes:
                        for t in acts:
                            if t not in shapes and list(sg.tensors[t].shape) == list(sg.tensors[out].shape):
                                shapes[t] = shapes[out]
        return shapes

    # -- the candidate model ---------------------------------------------------------------------

    def candidate(self, removed):
        """The template with channels removed: a ModelT sharing untouched tensors and buffers."""
        base = self.template
        sg0 = base.subgraphs[0]
        new = copy.copy(base)
        sg = copy.copy(sg0)
        new.subgraphs = [sg, *base.subgraphs[1:]]
        sg.tensors = list(sg0.tensors)
        sg.operators = list(sg0.operators)
        new.buffers = list(base.buffers)
        shapes = self.activation_shapes(removed)
        for t, shape in shapes.items():
            if tuple(int(d) for d in sg0.tensors[t].shape) != tuple(shape):
                self._set_shape(new, t, shape)
        for i, op in enumerate(sg0.operators):
            self._fit_weights(new, i, op, shapes)
        return new

    def _set_shape(self, model, t: int, shape) -> None:
        sg = model.subgraphs[0]
        old = sg.tensors[t]
        if tuple(int(d) for d in old.shape) == tuple(int(d) for d in shape):
            return
        tensor = copy.copy(old)
        tensor.shape = np.asarray(shape, dtype=np.int32)
        if old.shapeSignature is not None and len(old.shapeSignature) == len(shape):
            tensor.shapeSignature = np.asarray([old.shapeSignature[0], *shape[1:]], dtype=np.int32)
        q = old.quantization
        if q is not None and q.scale is not None and len(q.scale) > 1:
            n = int(shape[q.quantizedDimension])
            q = copy.copy(q)
            q.scale = np.asarray(q.scale)[:n]
            if q.zeroPoint is not None and len(q.zeroPoint) > 1:
                q.zeroPoint = np.asarray(q.zeroPoint)[:n]
            tensor.quantization = q
        if is_const(self.template, old):
            dtype = NUMPY_TYPES.get(int(old.type))
            if dtype is not None:
                buf = self.template.buffers[old.buffer]
                arr = np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype=dtype)
                arr = arr.reshape([int(d) for d in old.shape])
                cut = arr[tuple(slice(0, int(n)) for n in shape)]
                nb = copy.copy(buf)
                nb.data = np.frombuffer(np.ascontiguousarray(cut).tobytes(), dtype=np.uint8)
                model.buffers = list(model.buffers)
                model.buffers[old.buffer] = nb
        sg.tensors[t] = tensor
        feeder = self.producer.get(t)  # a float16 weight: DEQUANTIZE(const) feeds the op
        if feeder is not None and opcode_name(self.template, self.template.subgraphs[0].operators[feeder]) == "DEQUANTIZE":
            src = int(self.template.subgraphs[0].operators[feeder].inputs[0])
            if is_const(self.template, self.template.subgraphs[0].tensors[src]):
                self._set_shape(model, src, shape)

    def _fit_weights(self, model, i: int, op, shapes: dict) -> None:
        sg0 = self.template.subgraphs[0]
        name = opcode_name(self.template, op)
        ins = [int(t) for t in op.inputs]
        out = int(op.outputs[0]) if len(op.outputs) else -1
        if out < 0 or (out not in shapes and (not ins or ins[0] not in shapes)):
            return
        o_shape = shapes.get(out, tuple(int(d) for d in sg0.tensors[out].shape))
        i_shape = shapes.get(ins[0], tuple(int(d) for d in sg0.tensors[ins[0]].shape)) if ins and ins[0] >= 0 else None
        o, c = int(o_shape[-1]), int(i_shape[-1]) if i_shape else None

        def weight(k: int, shape):
            if k < len(ins) and ins[k] >= 0:
                self._set_shape(model, ins[k], shape)

        def old(k):
            return [int(d) for d in sg0.tensors[ins[k]].shape]

        if name == "CONV_2D":
            w = old(1)
            groups = max(1, int(sg0.tensors[ins[0]].shape[-1]) // max(1, w[3]))
            weight(1, (o, w[1], w[2], c // groups))
            weight(2, (o,))
        elif name == "DEPTHWISE_CONV_2D":
            w = old(1)
            weight(1, (1, w[1], w[2], o))
            weight(2, (o,))
        elif name == "FULLY_CONNECTED":
            weight(1, (o, c))
            weight(2, (o,))
        elif name == "RESHAPE":
            if len(ins) > 1 and ins[1] >= 0 and is_const(self.template, sg0.tensors[ins[1]]):
                t = sg0.tensors[ins[1]]
                tensor = copy.copy(t)
                buf = copy.copy(self.template.buffers[t.buffer])
                buf.data = np.frombuffer(np.asarray(o_shape, dtype=np.int32).tobytes(), dtype=np.uint8)
                tensor.shape = np.asarray([len(o_shape)], dtype=np.int32)
                model.buffers[t.buffer] = buf
                model.subgraphs[0].tensors[ins[1]] = tensor
            if op.builtinOptions is not None and getattr(op.builtinOptions, "newShape", None) is not None:
                nop = copy.copy(op)
                nop.builtinOptions = copy.copy(op.builtinOptions)
                nop.builtinOptions.newShape = np.asarray(o_shape, dtype=np.int32)
                model.subgraphs[0].operators[i] = nop
        else:  # per-channel constants of elementwise ops (an unfused BatchNorm's scale and shift)
            old_o = int(sg0.tensors[out].shape[-1])
            for k, t in enumerate(ins):
                if t >= 0 and is_const(self.template, sg0.tensors[t]) and len(sg0.tensors[t].shape) >= 1 \
                        and int(sg0.tensors[t].shape[-1]) == old_o and old_o != o:
                    weight(k, (*old(k)[:-1], o))

    def signatures(self, model) -> list[str]:
        return [unit_signature(model, u) for u in self.units]
