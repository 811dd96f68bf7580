"""Mixed-precision TFLite: int8 everywhere except chosen Keras layers, which stay float32.

Uses LiteRT's selective quantization (``tf.lite.experimental.QuantizationDebugger`` with
``denylisted_nodes``): the converter calibrates the whole model once, then quantizes every op
except those whose output tensors belong to a kept layer. Input and output stay float, as in the
plain int8 export; QUANTIZE / DEQUANTIZE ops are placed at each float/int8 boundary.
"""
from __future__ import annotations

from edgeprune.errors import EdgepruneError

# Keras layer types whose TFLite op does the arithmetic (the ops worth keeping float)
COMPUTE_LAYERS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense")
# TFLite ops whose second input is the layer's weights
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}


def compute_layers(model) -> list[str]:
    """Names of the layers that become conv / fully-connected ops, in model order."""
    out = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # a QAT wrapper holds the real layer
        if type(inner).__name__ in COMPUTE_LAYERS:
            out.append(layer.name)
    return out


def tensor_layer(name: str, layer_names) -> str | None:
    """The Keras layer a TFLite tensor came from (names look like ``model/conv1/Relu;model/conv1/Conv2D``)."""
    for part in name.split(";"):
        hit = next((c for c in part.split("/") if c in layer_names), None)
        if hit:
            return hit
    return None


def check_keep_float(model, keep_float) -> list[str]:
    """`keep_float` as a list, or one error naming what is not a conv / dense layer of `model`."""
    compute = compute_layers(model)
    unknown = [n for n in keep_float if n not in compute]
    if unknown:
        raise EdgepruneError(f"keep_float names {unknown}, which are not conv / dense layers of the model",
                             f"use layer names from the model, e.g. {', '.join(compute[:4])}")
    return list(keep_float)


def op_layer(output_name: str, weight_name: str | None, layer_names) -> str | None:
    """The layer an op belongs to: from its output tensor's name, else its weights' (the model's
    last op outputs a tensor named after the signature, ``StatefulPartitionedCall:0``)."""
    return tensor_layer(output_name, layer_names) or (tensor_layer(weight_name, layer_names) if weight_name else None)


def denylisted_nodes(calibrated_model: bytes, keep_float) -> dict[str, str]:
    """{output tensor name: layer} of every op that belongs to a kept layer, read from the calibrated flatbuffer."""
    # LiteRT loads only when a mixed file is made: the CLI imports this module
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=calibrated_model)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    keep = set(keep_float)
    nodes = {}
    for op in interp._get_ops_details():  # noqa: SLF001 (LiteRT has no public op list)
        ins = [i for i in op["inputs"] if i >= 0]
        weights = names.get(ins[1]) if op["op_name"] in WEIGHTED_OPS and len(ins) > 1 else None
        for out in op["outputs"]:
            layer = op_layer(names.get(out, ""), weights, keep)
            if layer:
                nodes[names[out]] = layer
    return nodes


def convert_mixed(converter, calibration_gen, keep_float) -> bytes:
    """Flatbuffer bytes: `converter` (set up for int8 with a representative dataset) with `keep_float` left float."""
    # TensorFlow loads only when a mixed file is made: the CLI imports this module
    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions()
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=calibration_gen, debug_options=options)
    nodes = denylisted_nodes(debugger.calibrated_model, keep_float)
    missing = [n for n in keep_float if n not in nodes.values()]
    if missing:
        raise EdgepruneError(f"no TFLite op comes from layer(s) {missing}, so they cannot be kept float",
                             "keep_float lists conv / dense layers (their activations fuse into them)")
    options.denylisted_nodes = list(nodes)
    return debugger.get_nondebug_quantized_model()
