"""Per-layer pruning rules: how channel atoms flow through a layer, and how the layer shrinks.

One :class:`Rule` subclass per family of layers, registered by Keras class name in ``RULES``.
A new layer type is one registry entry.  ``propagate`` returns the atom list of each output;
``shrink`` receives boolean keep-masks over the last axis of the layer's first input and its
output and returns the smaller layer's config and weights.
"""
from __future__ import annotations

import math

import numpy as np

from edgeprune.errors import UnsupportedLayerError


class Rule:
    """Channel-preserving by default: output channel i is input channel i, no weights to slice."""

    def propagate(self, ctx, layer, node, in_atoms):
        return [in_atoms[0]]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        return config, weights


def _last_axis_is_channels(layer) -> bool:
    fmt = getattr(layer, "data_format", "channels_last")
    return fmt in (None, "channels_last")


def _require_channels_last(layer):
    if not _last_axis_is_channels(layer):
        raise UnsupportedLayerError(
            f"layer '{layer.name}' ({type(layer).__name__}) uses data_format=channels_first",
            "rebuild the model with channels_last (the TFLite/ONNX default) before pruning",
        )


class Passthrough(Rule):
    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        return [in_atoms[0]]


class ChannelMixingActivation(Rule):
    """Softmax over the channel axis: removing a channel changes every other output, so pin it."""

    def propagate(self, ctx, layer, node, in_atoms):
        ctx.pin(in_atoms[0], f"softmax over channels in '{layer.name}'")
        return [in_atoms[0]]


class ActivationRule(Rule):
    MIXING = {"softmax", "log_softmax"}

    def propagate(self, ctx, layer, node, in_atoms):
        act = layer.get_config().get("activation")
        if act in self.MIXING:
            return ChannelMixingActivation().propagate(ctx, layer, node, in_atoms)
        return [in_atoms[0]]


class PerChannelWeights(Rule):
    """BatchNormalization, LayerNormalization, PReLU: every weight is a per-channel vector."""

    def propagate(self, ctx, layer, node, in_atoms):
        axis = layer.get_config().get("axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        rank = len(node.input_shapes[0])
        if [a % rank for a in axes] != [rank - 1]:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({type(layer).__name__}) normalises over axis {axis}, not the channel axis",
                f"protect it (--protect {layer.name}) or normalise over the last axis",
            )
        return [in_atoms[0]]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        return config, [w[..., keep_in] if w.shape and w.shape[-1] == keep_in.size else w for w in weights]


class PReLURule(PerChannelWeights):
    def propagate(self, ctx, layer, node, in_atoms):
        return [in_atoms[0]]


class ConvRule(Rule):
    """Conv1D/2D/3D: output channels are new atoms; input channels are consumed.

    Grouped convolutions are supported when groups == in == out channels (depthwise in disguise);
    other groupings keep both sides intact (their atoms are pinned), which is never wrong.
    """

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        cfg = layer.get_config()
        groups = cfg.get("groups", 1) or 1
        c_in, c_out = int(node.input_shapes[0][-1]), int(cfg["filters"])
        if groups > 1:
            if groups == c_in == c_out:
                return [in_atoms[0]]
            ctx.pin(in_atoms[0], f"grouped conv '{layer.name}' (groups={groups})")
            out = ctx.source_atoms(layer.name, c_out)
            ctx.pin(out, f"grouped conv '{layer.name}' (groups={groups})")
            return [out]
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, c_out)]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        groups = config.get("groups", 1) or 1
        config = dict(config, filters=int(keep_out.sum()))
        if groups > 1:
            if groups == keep_in.size:  # depthwise-style grouping: one kernel column per channel
                config["groups"] = int(keep_out.sum())
                return config, [weights[0][..., keep_out]] + [b[keep_out] for b in weights[1:]]
            return config, weights
        kernel = weights[0][..., keep_in, :][..., keep_out]
        return config, [kernel] + [b[keep_out] for b in weights[1:]]


class ConvTransposeRule(ConvRule):
    """Conv2DTranspose kernels are (kh, kw, out, in)."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, int(layer.get_config()["filters"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][..., keep_out, :][..., keep_in]
        return dict(config, filters=int(keep_out.sum())), [kernel] + [b[keep_out] for b in weights[1:]]


class DepthwiseRule(Rule):
    """DepthwiseConv: output channel c·m+k comes from input channel c, so it carries c's atom."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        m = int(layer.get_config().get("depth_multiplier", 1))
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [np.repeat(in_atoms[0], m)]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][..., keep_in, :]
        return config, [kernel] + [b[keep_out] for b in weights[1:]]


class SeparableRule(Rule):
    """SeparableConv: depthwise (…, in, m) then pointwise (1, 1, in·m, out); outputs are new atoms."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, int(layer.get_config()["filters"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        m = int(config.get("depth_multiplier", 1))
        dw, pw, *bias = weights
        keep_mid = np.repeat(keep_in, m)
        dw = dw[..., keep_in, :]
        pw = pw[..., keep_mid, :][..., keep_out]
        return dict(config, filters=int(keep_out.sum())), [dw, pw] + [b[keep_out] for b in bias]


class DenseRule(Rule):
    def propagate(self, ctx, layer, node, in_atoms):
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, int(layer.get_config()["units"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][keep_in][:, keep_out]
        return dict(config, units=int(keep_out.sum())), [kernel] + [b[keep_out] for b in weights[1:]]


class MergeRule(Rule):
    """Add/Subtract/Multiply/Average/Maximum/Minimum: equal positions of all inputs are one channel.

    An input whose channel axis has size 1 broadcasts (e.g. a gate) and is not coupled.
    """

    def propagate(self, ctx, layer, node, in_atoms):
        width = int(node.output_shapes[0][-1]) if len(node.output_shapes[0]) > 1 else 1
        full = [a for a, s in zip(in_atoms, node.input_shapes) if len(s) > 1 and int(s[-1]) == width]
        for other in full[1:]:
            ctx.unite(full[0], other)
        for a, s in zip(in_atoms, node.input_shapes):
            if not (len(s) > 1 and int(s[-1]) in (width, 1)):
                raise UnsupportedLayerError(
                    f"layer '{layer.name}' merges inputs of shapes {node.input_shapes}", "report this model")
        return [full[0]]


class ConcatenateRule(Rule):
    def propagate(self, ctx, layer, node, in_atoms):
        rank = len(node.output_shapes[0])
        axis = layer.get_config().get("axis", -1) % rank
        if axis == rank - 1:
            return [np.concatenate(in_atoms)]
        for other in in_atoms[1:]:
            ctx.unite(in_atoms[0], other)
        return [in_atoms[0]]


class FlattenRule(Rule):
    """Flatten (channels_last): position p of the output carries channel p mod C of the input."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        spatial = math.prod(int(d) for d in node.input_shapes[0][1:-1])
        return [np.tile(in_atoms[0], spatial)]


class ReshapeRule(Rule):
    """Reshape that keeps the channel axis last (e.g. squeeze-excite's (1, 1, C)) or flattens fully."""

    def _kind(self, node):
        in_shape, out_shape = node.input_shapes[0], node.output_shapes[0]
        if len(out_shape) > 1 and out_shape[-1] == in_shape[-1] and len(in_shape) > 1:
            return "keep_last"
        if len(out_shape) == 2:
            return "flatten"
        return None

    def propagate(self, ctx, layer, node, in_atoms):
        kind = self._kind(node)
        if kind == "keep_last":
            return [in_atoms[0]]
        if kind == "flatten":
            return FlattenRule().propagate(ctx, layer, node, in_atoms)
        raise UnsupportedLayerError(
            f"layer '{layer.name}' (Reshape {node.input_shapes[0]} → {node.output_shapes[0]}) moves the channel axis",
            f"protect it (--protect {layer.name}) to keep its channels intact",
        )

    def shrink(self, layer, config, weights, keep_in, keep_out):
        target = list(config["target_shape"])
        if len(target) == 1:
            if target[0] != -1:
                target = [int(keep_out.sum())]
        elif target[-1] != -1:
            target[-1] = int(keep_in.sum())
        return dict(config, target_shape=tuple(target)), weights


def _unite_shared_inputs(ctx, layer, node, atoms):
    """A layer called more than once consumes one weight tensor: its inputs share channels."""
    seen = ctx.g.__dict__.setdefault("_first_input_atoms", {})
    if layer.name in seen:
        ctx.unite(seen[layer.name], atoms)
    else:
        seen[layer.name] = atoms


_PASSTHROUGH = [
    "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "Identity",
]

RULES: dict[str, Rule] = {name: Passthrough() for name in _PASSTHROUGH}
RULES.update({
    "Activation": ActivationRule(),
    "Softmax": ChannelMixingActivation(),
    "BatchNormalization": PerChannelWeights(),
    "LayerNormalization": PerChannelWeights(),
    "PReLU": PReLURule(),
    "Conv1D": ConvRule(), "Conv2D": ConvRule(), "Conv3D": ConvRule(),
    "Conv2DTranspose": ConvTransposeRule(),
    "DepthwiseConv1D": DepthwiseRule(), "DepthwiseConv2D": DepthwiseRule(),
    "SeparableConv1D": SeparableRule(), "SeparableConv2D": SeparableRule(),
    "Dense": DenseRule(),
    "Add": MergeRule(), "Subtract": MergeRule(), "Multiply": MergeRule(), "Average": MergeRule(),
    "Maximum": MergeRule(), "Minimum": MergeRule(),
    "Concatenate": ConcatenateRule(),
    "Flatten": FlattenRule(),
    "Reshape": ReshapeRule(),
})


class RescalingRule(Rule):
    def propagate(self, ctx, layer, node, in_atoms):
        cfg = layer.get_config()
        if np.size(cfg.get("scale", 1.0)) > 1 or np.size(cfg.get("offset", 0.0)) > 1:
            ctx.pin(in_atoms[0], f"per-channel Rescaling '{layer.name}'")
        return [in_atoms[0]]


RULES["Rescaling"] = RescalingRule()


class NormalizationRule(PerChannelWeights):
    """keras Normalization (feature-wise mean/variance, broadcast shape (…, C)) over the last axis."""

    def propagate(self, ctx, layer, node, in_atoms):
        axis = layer.get_config().get("axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        rank = len(node.input_shapes[0])
        if [a % rank for a in axes] != [rank - 1]:
            ctx.pin(in_atoms[0], f"Normalization '{layer.name}' over axis {axis}")
        return [in_atoms[0]]


RULES["Normalization"] = NormalizationRule()


def rule_for(layer) -> Rule | None:
    return RULES.get(type(layer).__name__)
