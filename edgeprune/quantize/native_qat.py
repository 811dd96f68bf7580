"""Quantization-aware training on Keras 3 (TensorFlow backend), converted to a full-int8 TFLite file.

``quantize_native(model)`` rebuilds a float Keras 3 functional or Sequential model with the layers of
:mod:`edgeprune.quantize.native_layers` (same float weights): Conv2D / DepthwiseConv2D / Conv1D / Dense
get int8 fake-quantized weights, a SeparableConv2D becomes a depthwise + a 1x1 conv (as TFLite runs it),
a BatchNormalization right after one of them is folded into it, and an activation fake-quant follows
every tensor TFLite holds in int8 (model inputs, conv/dense/Add/Concatenate/global-pooling outputs,
after the ReLU TFLite fuses into them).  Fine-tune it with ``fit``; ``edgeprune.export.tflite.export_tflite(model, path, quant="int8")``
writes the int8 file.  ``save_native`` / ``load_native`` keep it as ``.keras``: any process that has imported this
module (which registers the layers) can also read the file with plain ``keras.models.load_model``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgeprune import fileio
from edgeprune.errors import EdgepruneError, ModelLoadError
from edgeprune.quantize import native_layers as nl
from edgeprune.quantize.native_layers import keras

SKIP_FIX = "add it to quantize.skip_layers to keep it float, or quantize after training (quantize: {mode: ptq})"
BN_FIX = ("QAT folds a BatchNormalization into the conv/dense layer right before it: put the BN before the "
          "activation (conv → BN → ReLU), keep it float (quantize.skip_layers), or quantize after training "
          "(quantize: {mode: ptq})")
COMPUTE = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv1D", "Dense"}
QUANT_CLASS = {"Conv2D": nl.QuantConv2D, "DepthwiseConv2D": nl.QuantDepthwiseConv2D, "Conv1D": nl.QuantConv1D,
               "Dense": nl.QuantDense}
MERGE = {"Add", "Concatenate", "GlobalAveragePooling2D", "GlobalAveragePooling1D"}  # int8 ops with an own range
# ops that keep their input's int8 scale (TFLite requires or propagates it): nothing to learn
PASS = {"InputLayer", "MaxPooling2D", "MaxPooling1D", "AveragePooling2D", "AveragePooling1D", "Flatten", "Reshape",
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "ZeroPadding2D", "ZeroPadding1D", "Cropping2D", "Identity"}
TFLITE_INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")


def _kind(layer) -> str:
    """'relu' (post-activation, quantized after), 'fixed' (softmax/sigmoid/tanh), 'pass', 'merge',
    'compute', 'bn', or '' (no int8 QAT form)."""
    cls = type(layer).__name__
    if cls in COMPUTE:
        return "compute"
    if cls in ("BatchNormalization",):
        return "bn"
    if cls in MERGE:
        return "merge"
    if cls in PASS:
        return "pass"
    if cls == "ReLU":
        cfg = layer.get_config()
        plain = not cfg.get("negative_slope") and not cfg.get("threshold")
        return "relu" if plain and cfg.get("max_value") in (None, 6, 6.0) else ""
    if cls == "Activation":
        name = nl.activation_name(layer.activation)
        return "pass" if name == "linear" else "relu" if name in nl.POST_ACTIVATIONS else (
            "fixed" if name in nl.FIXED_RANGE_ACTIVATIONS else "")
    if cls == "Softmax":
        return "fixed"
    return ""


def _unsupported(layer, why: str = "") -> EdgepruneError:
    return EdgepruneError(f"native QAT cannot quantize layer '{layer.name}' ({type(layer).__name__}{why})", SKIP_FIX)


def _matcher(skip_layers: Iterable[str], names: list[str]) -> set[str]:
    skip = set()
    for p in skip_layers:
        try:
            rx = re.compile(p)
        except re.error as err:
            raise EdgepruneError(f"quantize.skip_layers entry '{p}' is not a valid regular expression ({err})",
                                 "escape special characters or use the exact layer name") from err
        hits = {n for n in names if n == p or rx.fullmatch(n)}
        if not hits:
            raise EdgepruneError(f"quantize.skip_layers entry '{p}' matches no layer",
                                 "use exact layer names or regular expressions that match them (see the model summary)")
        skip |= hits
    return skip


def _graph(model):
    """The model's functional graph (a Sequential's inner one), checked for what the rebuild handles."""
    if not isinstance(model, keras.Model):
        raise EdgepruneError(
            f"native QAT needs a Keras 3 model, got {type(model).__module__}.{type(model).__name__}",
            "convert a tf-keras model with edgeprune.modelio.to_keras3, or use the tfmot backend")
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        raise EdgepruneError(f"native QAT needs a functional or built Sequential model, got {type(model).__name__}",
                             "build the model (give it an Input) or rebuild it functionally")
    for layer in graph.layers:
        if isinstance(layer, keras.Model):
            raise EdgepruneError(f"layer '{layer.name}' is a nested model; native QAT needs one flat graph",
                                 "flatten the model into one functional graph before QAT")
        if isinstance(layer, nl.QUANT_LAYERS):
            raise EdgepruneError(f"model '{model.name}' is already quantization-aware", "fine-tune or export it directly")
    return graph


def _bn_foldable(bn, producer, consumers, outputs) -> bool:
    cfg = bn.get_config()
    axis = cfg["axis"][0] if isinstance(cfg["axis"], (list, tuple)) and len(cfg["axis"]) == 1 else cfg["axis"]
    rank = len(bn.input.shape)
    return (producer is not None and _kind(producer) == "compute"
            and nl.activation_name(producer.activation) == "linear"
            and axis in (-1, rank - 1) and len(consumers.get(id(producer.output), [])) == 1
            and id(producer.output) not in outputs)


def quantize_native(model, skip_layers: Iterable[str] = (), *, ema_decay: float = 0.99):
    """A QAT copy of a float Keras 3 model (same float weights); layers matching `skip_layers` stay float.

    Raises EdgepruneError naming the first layer without an int8 QAT form.
    """
    graph = _graph(model)
    nodes = [n for d in sorted(graph._nodes_by_depth, reverse=True) for n in graph._nodes_by_depth[d]]
    layers = [n.operation for n in nodes]
    if len({id(l) for l in layers}) != len(layers):
        shared = next(l for l in layers if layers.count(l) > 1)
        raise EdgepruneError(f"layer '{shared.name}' is called more than once; native QAT needs unshared layers",
                             "give each call its own layer")
    skip = _matcher(skip_layers, [l.name for l in layers])
    consumers: dict[int, list] = {}
    producer: dict[int, object] = {}
    for node in nodes:
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(node.operation)
        for t in node.outputs:
            producer[id(t)] = node.operation
    outputs = {id(t) for t in graph.outputs}

    # plan: which BN folds into which conv, which layers' outputs a following ReLU quantizes
    fold: dict[str, object] = {}
    for layer in layers:
        kind = "skip" if layer.name in skip else _kind(layer)
        if not kind:
            raise _unsupported(layer)
        if kind == "bn":
            src = producer.get(id(layer.input))
            if src is None or src.name in skip or not _bn_foldable(layer, src, consumers, outputs):
                raise EdgepruneError(
                    f"native QAT cannot quantize layer '{layer.name}' (BatchNormalization): only a BN right after "
                    "a linear Conv2D/DepthwiseConv2D/SeparableConv2D/Conv1D/Dense that feeds nothing else is folded",
                    BN_FIX)
            fold[src.name] = layer
        if kind == "compute":
            act = nl.activation_name(layer.activation)
            if act not in nl.POST_ACTIVATIONS and act not in nl.FIXED_RANGE_ACTIVATIONS:
                raise _unsupported(layer, f", activation '{act}'")
            cfg = layer.get_config()
            if cfg.get("data_format", "channels_last") != "channels_last" or cfg.get("groups", 1) != 1:
                raise _unsupported(layer, ", channels_first or grouped")
            if getattr(layer, "quantization_mode", None):
                raise _unsupported(layer, f", already quantized by Keras ({layer.quantization_mode})")

    def fused_relu(tensor) -> bool:
        """The tensor's only reader is a ReLU that quantizes it after (TFLite fuses it into the op)."""
        users = consumers.get(id(tensor), [])
        return (id(tensor) not in outputs and len(users) == 1 and users[0].name not in skip
                and _kind(users[0]) == "relu")

    new: dict[int, object] = {}  # id(old KerasTensor) -> new KerasTensor
    quantized: dict[int, bool] = {}  # id(new KerasTensor) -> holds int8 values in TFLite
    used_names = {l.name for l in layers}

    def unique(name):
        base, i = name, 1
        while name in used_names:
            name, i = f"{base}_{i}", i + 1
        used_names.add(name)
        return name

    def as_int8(t, after: str):
        if quantized.get(id(t)):
            return t
        q = nl.ActivationQuantizer(ema_decay=ema_decay, name=unique(f"{after}_quant"))(t)
        quantized[id(q)] = True
        return q

    def copy_of(layer):
        clone = type(layer).from_config(layer.get_config())
        return clone

    for node in nodes:
        layer = node.operation
        if node.is_input:
            t = node.outputs[0]
            inp = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=layer.name)
            new[id(t)] = inp
            quantized[id(inp)] = False
            continue
        kind = "skip" if layer.name in skip else _kind(layer)
        args, kwargs = node.arguments.fill_in(new)
        ins = [new[id(t)] for t in node.input_tensors]
        if kind == "bn":  # folded: its output is the conv's
            out = new[id(layer.input)]
        elif kind == "skip":
            clone = copy_of(layer)
            out = clone(*args, **kwargs)
            clone.set_weights(layer.get_weights())
            quantized[id(out)] = False
        elif kind == "pass":
            out = copy_of(layer)(*args, **kwargs)
            quantized[id(out)] = all(quantized.get(id(t), False) for t in ins)
        elif kind == "fixed":
            x = as_int8(ins[0], producer[id(node.input_tensors[0])].name)
            out = copy_of(layer)(x, **kwargs)
            quantized[id(out)] = True
        elif kind == "relu":
            out = copy_of(layer)(*args, **kwargs)
            out = as_int8(out, layer.name)
        elif kind == "merge":
            xs = [as_int8(t, producer[id(o)].name) for t, o in zip(ins, node.input_tensors)]
            out = copy_of(layer)(xs if len(node.input_tensors) > 1 and isinstance(args[0], (list, tuple)) else xs[0])
            if not fused_relu(node.outputs[0]):
                out = as_int8(out, layer.name)
        else:  # compute
            x = as_int8(ins[0], producer[id(node.input_tensors[0])].name)
            bn = fold.get(layer.name)
            end = bn.output if bn is not None else node.outputs[0]
            # a softmax/sigmoid/tanh layer quantizes its input (the pre-activation) whatever follows
            own = not fused_relu(end) or nl.activation_name(layer.activation) in nl.FIXED_RANGE_ACTIVATIONS
            out = _quant_compute(layer, x, bn, quantize_output=own, ema_decay=ema_decay, unique=unique)
            quantized[id(out)] = own
        for t in node.outputs:
            new[id(t)] = out
    inputs = [new[id(t)] for t in graph.inputs]
    outs = [new[id(t)] for t in graph.outputs]
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outs if len(outs) > 1 else outs[0],
                       name=model.name)


def _bn_config(bn):
    if bn is None:
        return None
    cfg = bn.get_config()
    return {"epsilon": float(cfg["epsilon"]), "momentum": float(cfg["momentum"]), "center": bool(cfg["center"]),
            "scale": bool(cfg["scale"])}


def _set_bn(qlayer, bn):
    if bn is None:
        return
    if bn.scale:
        qlayer.bn_gamma.assign(bn.gamma)
    if bn.center:
        qlayer.bn_beta.assign(bn.beta)
    qlayer.bn_moving_mean.assign(bn.moving_mean)
    qlayer.bn_moving_variance.assign(bn.moving_variance)


def _quant_compute(layer, x, bn, *, quantize_output: bool, ema_decay: float, unique):
    """The quantized replacement of a conv/dense layer (two for a SeparableConv2D), called on `x`."""
    cls = type(layer).__name__
    cfg = layer.get_config()
    extra = {"batchnorm": _bn_config(bn), "quantize_output": quantize_output, "ema_decay": ema_decay}
    if cls == "SeparableConv2D":
        dw_cfg = {k: cfg[k] for k in ("kernel_size", "strides", "padding", "data_format", "dilation_rate",
                                       "depth_multiplier", "depthwise_initializer", "depthwise_regularizer",
                                       "depthwise_constraint", "trainable", "dtype")}
        dw = nl.QuantDepthwiseConv2D.from_config({**dw_cfg, "use_bias": False, "activation": None, "quantize_output": True,
                                                  "name": unique(f"{layer.name}_depthwise"), "ema_decay": ema_decay})
        mid = dw(x)
        dw.kernel.assign(layer.depthwise_kernel)
        pw = nl.QuantConv2D.from_config({
            "filters": cfg["filters"], "kernel_size": 1, "use_bias": cfg["use_bias"], "activation": cfg["activation"],
            "kernel_initializer": cfg["pointwise_initializer"], "bias_initializer": cfg["bias_initializer"],
            "kernel_regularizer": cfg["pointwise_regularizer"], "bias_regularizer": cfg["bias_regularizer"],
            "activity_regularizer": cfg["activity_regularizer"], "kernel_constraint": cfg["pointwise_constraint"],
            "bias_constraint": cfg["bias_constraint"], "trainable": cfg["trainable"], "dtype": cfg["dtype"],
            "name": layer.name, **extra})
        return _built_with(pw, mid, layer.pointwise_kernel, layer.bias if layer.use_bias else None, bn)
    for k in ("lora_rank", "lora_alpha", "quantization_config"):
        cfg.pop(k, None)
    q = QUANT_CLASS[cls].from_config({**cfg, **extra})
    return _built_with(q, x, layer.kernel, layer.bias if layer.use_bias else None, bn)


def _built_with(qlayer, x, kernel, bias, bn):
    """`qlayer` called on `x` (which builds it), then given the float layer's kernel, bias and folded BN."""
    out = qlayer(x)
    qlayer.kernel.assign(kernel)
    if bias is not None:
        qlayer.bias.assign(bias)
    _set_bn(qlayer, bn)
    return out


def is_native_qat_model(model) -> bool:
    return isinstance(model, keras.Model) and any(isinstance(l, nl.QUANT_LAYERS) for l in model.layers)


def save_native(model, path) -> Path:
    """Write a native QAT model as ``.keras`` (atomically)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise EdgepruneError(f"a native QAT model is saved as .keras, not {path.name}", f"use {path.with_suffix('.keras').name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras 3 saves a compiled model's optimizer state (Adam: two slots per weight, the file 3x the
    # weights) and has no include_optimizer; the file is for inference and export, so leave it out
    optimizer = getattr(model, "optimizer", None)
    model.optimizer = None
    try:
        with fileio.atomic_output(path) as tmp:
            model.save(tmp)
    finally:
        model.optimizer = optimizer
    return path


def load_native(path):
    """Read a ``.keras`` file written by `save_native` (plain ``keras.models.load_model`` works too once this
    module is imported)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist", "check the path")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # zip/h5/deserialization errors come in many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ModelLoadError(f"cannot read model {path}: {first}", "re-save it with save_native") from err


def serving_function(model):
    """(tf.function of the model's inference call, its input signature with a free batch dimension): what
    the TFLite converter and tf2onnx convert, so that both read the fake-quant ranges as constants."""
    spec = [tf.TensorSpec((None, *i.shape[1:]), i.dtype, name=i.name.split(":")[0]) for i in model.inputs]

    def serve(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    return tf.function(serve, autograph=False), spec


def fine_tune_native(model, dataset, *, epochs: int, learning_rate: float, batch_size: int, from_logits: bool,
                     seed: int = 0, callbacks=()) -> dict:
    """Keras 3 ``fit`` of a native QAT model on the dataset's training split (validation on its val split);
    returns the history. Cross-entropy on the labels, from logits or probabilities as the model outputs."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), metrics=["accuracy"])
    history = model.fit(dataset.x_train, dataset.y_train, validation_data=(dataset.x_val, dataset.y_val),
                        epochs=epochs, batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def check_full_int8(model, data: bytes) -> None:
    """Unless the model keeps layers float (skip_layers), every conv / fully-connected / add op of its TFLite
    file `data` must be int8, or this raises."""
    if all(isinstance(l, nl.QUANT_LAYERS) or _kind(l) in ("pass", "relu", "fixed", "merge") for l in model.layers):
        floats = [op["op"] for op in tflite_ops(data) if op["op"] in TFLITE_INT8_OPS and "float32" in op["inputs"]]
        if floats:
            raise EdgepruneError(f"the int8 conversion left float ops: {', '.join(sorted(set(floats)))}",
                                 "report it with the model; keep those layers float with quantize.skip_layers meanwhile")


def tflite_ops(data: bytes) -> list[dict]:
    """Each op of a flatbuffer, in execution order: name, input/output element types, and tensor indices."""
    it = Interpreter(model_content=data,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [{"op": op["op_name"],
             "inputs": [np.dtype(tensors[i]["dtype"]).name for i in op["inputs"] if i >= 0],
             "outputs": [np.dtype(tensors[i]["dtype"]).name for i in op["outputs"]],
             "input_index": [i for i in op["inputs"] if i >= 0], "output_index": list(op["outputs"])}
            for op in it._get_ops_details()]  # noqa: SLF001 (LiteRT has no public op list)
