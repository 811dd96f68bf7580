"""Per-layer rules: everything edgeprune knows about one family of layers, in one class.

One :class:`Rule` subclass per family, registered by exact Keras class name in ``RULES``.  A rule
answers every question the engine and the Keras carry-over ask about its layers:

- ``propagate``: how channel atoms flow through the layer (graph analysis);
- ``shrink``: the smaller layer's config and weights, given keep-masks over the last axis of the
  layer's first input and first output (surgery);
- ``zero``: the original weights with removed channels' contributions zeroed (equivalence check);
- ``macs``: multiply-accumulates of one call at batch size one (stats, inspect, kept-MACs notes);
- ``filters``: the weights scored per output channel, as a 2-D (rows, channels) view
  (importance criteria, sparsity penalties), or None;
- ``consumes``/``creates_channels``: whether the layer mixes input channels into new ones, and
  whether it makes new channels from weights (group roles, the "first weight layer");
- ``to_tfkeras``/``to_keras3``: config edits carrying the layer between Keras 3 and tf-keras.

Adding a layer type is one class here plus its ``RULES`` entry; ``tests/test_pruning_registry.py``
fails until the type also has a fixture model that prunes through it with equivalence.
A rule that cannot follow a particular layer raises :class:`UnsupportedLayerError`; the engine
then keeps that layer's channels intact (or stops, with ``strict``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgeprune.errors import UnsupportedLayerError

ANY = "*"


# ---- carry-over config edits (Keras 3 <-> tf-keras) ------------------------------------------

class RuleError(Exception):
    """A config key carries a value the target Keras cannot express (message names the key)."""


@dataclass(frozen=True)
class KeyRule:
    """One edit of a layer config: rename, convert or drop a key (dropping only neutral values).

    ``classes`` is ``ANY`` or exact class names; layer rules list their own edits with ``edit``.
    """

    classes: tuple[str, ...] | str
    key: str
    rename: str | None = None
    convert: Callable[[Any], Any] | None = None
    drop_if: tuple = ()          # drop when the value is one of these; any other value is an error
    drop_always: bool = False    # drop whatever the value (keys that do not change the forward pass)

    def applies(self, class_name: str) -> bool:
        if self.classes == ANY:
            return True
        names = (self.classes,) if isinstance(self.classes, str) else self.classes
        return class_name in names

    def apply(self, config: dict) -> None:
        if self.key not in config:
            return
        value = config[self.key]
        if self.drop_always:
            del config[self.key]
        elif self.drop_if:
            if not any(value is n or (type(value) is type(n) and value == n) for n in self.drop_if):
                raise RuleError(f"config key '{self.key}'={value!r} has no equivalent")
            del config[self.key]
        else:
            if self.convert is not None:
                value = self.convert(value)
            if self.rename is not None:
                del config[self.key]
                config[self.rename] = value
            else:
                config[self.key] = value


def edit(key: str, **kwargs) -> KeyRule:
    """A config edit owned by a layer rule (applies to the rule's own classes only)."""
    return KeyRule(ANY, key, **kwargs)


# ---- helpers ---------------------------------------------------------------------------------

def _prod(shape) -> int:
    return math.prod(int(d) for d in shape if d is not None)


def _last_axis_is_channels(layer) -> bool:
    fmt = getattr(layer, "data_format", "channels_last")
    return fmt in (None, "channels_last")


def _require_channels_last(layer):
    if not _last_axis_is_channels(layer):
        raise UnsupportedLayerError(
            f"layer '{layer.name}' ({type(layer).__name__}) uses data_format=channels_first",
            "rebuild the model with channels_last (the TFLite/ONNX default) before pruning",
        )


def _unite_shared_inputs(ctx, layer, node, atoms):
    """A layer called more than once consumes one weight tensor: its inputs share channels."""
    seen = ctx.g.__dict__.setdefault("_first_input_atoms", {})
    if layer.name in seen:
        ctx.unite(seen[layer.name], atoms)
    else:
        seen[layer.name] = atoms


def _zeroed(w, index, drop_rows=None, drop_cols=None):
    """Copy of w[index] with the given rows (axis -2 or 0) / columns (axis -1) set to zero."""
    w = list(w)
    k = w[index].copy()
    if drop_rows is not None:
        k[..., drop_rows, :] = 0.0
    if drop_cols is not None:
        k[..., drop_cols] = 0.0
    w[index] = k
    return w


# ---- the contract ------------------------------------------------------------------------------

class Rule:
    """The contract every registered rule fulfils (``tests/test_pruning_registry.py`` checks it)."""

    consumes = False           # mixes input channels into new output channels (group role "in")
    creates_channels = False   # makes new channels from its weights (a candidate "first weight layer")
    intact = False             # the engine keeps its channels intact on both sides
    prunes_through = True      # removed channels can pass it (False: it pins them by design)
    to_tfkeras: tuple[KeyRule, ...] = ()   # config edits Keras 3 -> tf-keras
    to_keras3: tuple[KeyRule, ...] = ()    # config edits tf-keras -> Keras 3

    def propagate(self, ctx, layer, node, in_atoms) -> list:
        raise NotImplementedError

    def shrink(self, layer, config, weights, keep_in, keep_out):
        raise NotImplementedError

    def zero(self, layer, weights, drop_in, drop_out) -> list:
        raise NotImplementedError

    def macs(self, layer, in_shape, out_shape) -> int:
        raise NotImplementedError

    def filters(self, layer, weights, xp=np):
        raise NotImplementedError


CONTRACT = ("propagate", "shrink", "zero", "macs", "filters")


class WeightsUntouched(Rule):
    """No weights to slice or zero, no MACs counted, no filters to score."""

    def shrink(self, layer, config, weights, keep_in, keep_out):
        return config, weights

    def zero(self, layer, weights, drop_in, drop_out):
        return weights

    def macs(self, layer, in_shape, out_shape):
        return 0

    def filters(self, layer, weights, xp=np):
        return None


class ChannelPreserving(WeightsUntouched):
    """Output channel i is input channel i; no weights depend on channels, no MACs counted."""

    def propagate(self, ctx, layer, node, in_atoms):
        return [in_atoms[0]]


class InputRule(ChannelPreserving):
    """The model input: its channels are atoms of their own, pinned (a model's interface stays)."""

    prunes_through = False
    to_tfkeras = (edit("optional", drop_if=(False,)),)

    def propagate(self, ctx, layer, node, in_atoms):
        shape = layer.get_output_at(0).shape
        atoms = ctx.new_atoms(layer.name, int(shape[-1]) if len(shape) > 1 else 1)
        ctx.pin(atoms, "model input")
        return [atoms]


class Passthrough(ChannelPreserving):
    """Elementwise activations, dropout, pooling, padding, cropping, upsampling (channels_last)."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        return [in_atoms[0]]


class LeakyReLURule(Passthrough):
    to_tfkeras = (edit("negative_slope", rename="alpha"),)
    to_keras3 = (edit("alpha", rename="negative_slope"),)


class SpatialDropoutRule(Passthrough):
    # Keras 3's SpatialDropout takes no `trainable` (it has no weights) and no noise_shape
    to_keras3 = (edit("trainable", drop_always=True), edit("noise_shape", drop_if=(None,)))


class ZeroPadding1DRule(Passthrough):
    to_tfkeras = (edit("data_format", drop_if=("channels_last",)),)


class ChannelMixingActivation(ChannelPreserving):
    """Softmax over the channel axis: removing a channel changes every other output, so pin it."""

    prunes_through = False
    def propagate(self, ctx, layer, node, in_atoms):
        ctx.pin(in_atoms[0], f"softmax over channels in '{layer.name}'")
        return [in_atoms[0]]


class ActivationRule(ChannelPreserving):
    MIXING = {"softmax", "log_softmax"}

    def propagate(self, ctx, layer, node, in_atoms):
        if layer.get_config().get("activation") in self.MIXING:
            ctx.pin(in_atoms[0], f"softmax over channels in '{layer.name}'")
        return [in_atoms[0]]


class RescalingRule(ChannelPreserving):
    def propagate(self, ctx, layer, node, in_atoms):
        cfg = layer.get_config()
        if np.size(cfg.get("scale", 1.0)) > 1 or np.size(cfg.get("offset", 0.0)) > 1:
            ctx.pin(in_atoms[0], f"per-channel Rescaling '{layer.name}'")
        return [in_atoms[0]]


def _single_axis(value):
    """tf-keras stores BatchNormalization axis as a list; Keras 3 takes one int."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise RuleError(f"config key 'axis'={list(value)!r} (several axes) has no equivalent")
        return value[0]
    return value


class PerChannelWeights(ChannelPreserving):
    """BatchNormalization, LayerNormalization: every weight is a per-channel vector.

    BatchNorm folds into the preceding conv at export, so it counts parameters but no MACs.
    """

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


class BatchNormRule(PerChannelWeights):
    to_tfkeras = (
        edit("synchronized", drop_if=(False,)),
        edit("renorm", drop_if=(False,)),
        edit("renorm_clipping", drop_if=(None,)),
        edit("renorm_momentum", drop_always=True),  # unused without renorm
    )
    to_keras3 = (edit("axis", convert=_single_axis),)


class LayerNormRule(PerChannelWeights):
    """LayerNormalization over the channel axis: every output depends on the mean and variance of
    all channels, so removing one changes the others; its channels are pinned."""

    prunes_through = False
    to_tfkeras = (edit("rms_scaling", drop_if=(False,)),)

    def propagate(self, ctx, layer, node, in_atoms):
        axis = layer.get_config().get("axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        rank = len(node.input_shapes[0])
        if rank - 1 not in [a % rank for a in axes]:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' (LayerNormalization) normalises over axis {axis}, not the channel axis",
                f"protect it (--protect {layer.name})")
        ctx.pin(in_atoms[0], f"LayerNormalization over channels in '{layer.name}'")
        return [in_atoms[0]]


class PReLURule(PerChannelWeights):
    """PReLU: alpha has the input's shape (or shares axes); per-channel slicing of its last axis."""

    def propagate(self, ctx, layer, node, in_atoms):
        return [in_atoms[0]]


class NormalizationRule(PerChannelWeights):
    """keras Normalization (feature-wise mean/variance, broadcast shape (…, C)) over the last axis."""

    def propagate(self, ctx, layer, node, in_atoms):
        axis = layer.get_config().get("axis", -1)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        rank = len(node.input_shapes[0])
        if [a % rank for a in axes] != [rank - 1]:
            ctx.pin(in_atoms[0], f"Normalization '{layer.name}' over axis {axis}")
        return [in_atoms[0]]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        config = dict(config)
        for key in ("mean", "variance"):  # given at construction, they are in the config too
            v = config.get(key)
            if v is not None and np.shape(v) and np.shape(v)[-1] == keep_in.size:
                config[key] = np.asarray(v)[..., keep_in].tolist()
        return super().shrink(layer, config, weights, keep_in, keep_out)


# ---- weight layers -----------------------------------------------------------------------------

class ConvRule(Rule):
    """Conv1D/2D/3D: output channels are new atoms; input channels are consumed.

    Grouped convolutions are pruned when groups == in == out channels (depthwise in disguise);
    other groupings keep both sides intact (their atoms are pinned), which is never wrong.
    """

    consumes = True
    creates_channels = True

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

    def zero(self, layer, weights, drop_in, drop_out):
        if (layer.get_config().get("groups", 1) or 1) > 1:
            return weights  # depthwise-style: a removed channel's output is dropped by its consumers
        return _zeroed(weights, 0, drop_rows=drop_in)

    def macs(self, layer, in_shape, out_shape):
        cfg = layer.get_config()
        groups = cfg.get("groups", 1) or 1
        return _prod(out_shape[1:]) * _prod(cfg["kernel_size"]) * int(in_shape[-1]) // groups

    def filters(self, layer, weights, xp=np):
        return xp.reshape(weights[0], (-1, weights[0].shape[-1]))


class ConvTransposeRule(ConvRule):
    """Conv1D/2D/3DTranspose: kernels are (…, out, in)."""

    # tf-keras writes groups: 1, which Keras 3's transposed convolutions reject
    to_keras3 = (edit("groups", drop_if=(1,)),)

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, int(layer.get_config()["filters"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][..., keep_out, :][..., keep_in]
        return dict(config, filters=int(keep_out.sum())), [kernel] + [b[keep_out] for b in weights[1:]]

    def zero(self, layer, weights, drop_in, drop_out):
        return _zeroed(weights, 0, drop_cols=drop_in)

    def macs(self, layer, in_shape, out_shape):
        return _prod(in_shape[1:]) * _prod(layer.get_config()["kernel_size"]) * int(out_shape[-1])

    def filters(self, layer, weights, xp=np):
        k = xp.moveaxis(weights[0], -2, -1)
        return xp.reshape(k, (-1, k.shape[-1]))


class DepthwiseRule(Rule):
    """DepthwiseConv: output channel c·m+k comes from input channel c, so it carries c's atom."""

    to_keras3 = (edit("groups", drop_if=(1,)),)

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        m = int(layer.get_config().get("depth_multiplier", 1))
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [np.repeat(in_atoms[0], m)]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][..., keep_in, :]
        return config, [kernel] + [b[keep_out] for b in weights[1:]]

    def zero(self, layer, weights, drop_in, drop_out):
        return weights  # channel-wise: a removed channel's outputs are dropped by its consumers

    def macs(self, layer, in_shape, out_shape):
        return _prod(out_shape[1:]) * _prod(layer.get_config()["kernel_size"])

    def filters(self, layer, weights, xp=np):
        return None


class SeparableRule(Rule):
    """SeparableConv: depthwise (…, in, m) then pointwise (1, 1, in·m, out); outputs are new atoms."""

    consumes = True
    creates_channels = True
    to_keras3 = (
        edit("groups", drop_if=(1,)),
        edit("kernel_initializer", drop_always=True),
        edit("kernel_regularizer", drop_if=(None,)),
        edit("kernel_constraint", drop_if=(None,)),
    )

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

    def zero(self, layer, weights, drop_in, drop_out):
        m = int(layer.get_config().get("depth_multiplier", 1))
        return _zeroed(weights, 1, drop_rows=np.repeat(drop_in, m))

    def macs(self, layer, in_shape, out_shape):
        m = int(layer.get_config().get("depth_multiplier", 1))
        spatial, c_in = _prod(out_shape[1:-1]), int(in_shape[-1])
        return spatial * _prod(layer.get_config()["kernel_size"]) * c_in * m + spatial * c_in * m * int(out_shape[-1])

    def filters(self, layer, weights, xp=np):
        return xp.reshape(weights[1], (-1, weights[1].shape[-1]))


_QUANT_EDITS = (
    edit("quantization_config", drop_if=(None,)),
    edit("lora_rank", drop_if=(None,)),
    edit("lora_alpha", drop_always=True),
)


class DenseRule(Rule):
    consumes = True
    creates_channels = True
    to_tfkeras = _QUANT_EDITS

    def propagate(self, ctx, layer, node, in_atoms):
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        return [ctx.source_atoms(layer.name, int(layer.get_config()["units"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        kernel = weights[0][keep_in][:, keep_out]
        return dict(config, units=int(keep_out.sum())), [kernel] + [b[keep_out] for b in weights[1:]]

    def zero(self, layer, weights, drop_in, drop_out):
        w = list(weights)
        w[0] = w[0].copy()
        w[0][drop_in, :] = 0.0
        return w

    def macs(self, layer, in_shape, out_shape):
        return _prod(in_shape[1:]) * int(out_shape[-1])

    def filters(self, layer, weights, xp=np):
        return weights[0]


class EmbeddingRule(Rule):
    """Embedding: the embedding dimensions are new channels; the input (token ids) is not channels."""

    creates_channels = True
    to_tfkeras = _QUANT_EDITS + (edit("embeddings_constraint", drop_if=(None,)),)
    # the shape comes from the Input
    to_keras3 = (edit("input_length", drop_always=True), edit("batch_shape", drop_always=True))

    def propagate(self, ctx, layer, node, in_atoms):
        return [ctx.source_atoms(layer.name, int(layer.get_config()["output_dim"]))]

    def shrink(self, layer, config, weights, keep_in, keep_out):
        return dict(config, output_dim=int(keep_out.sum())), [weights[0][:, keep_out]]

    def zero(self, layer, weights, drop_in, drop_out):
        return weights

    def macs(self, layer, in_shape, out_shape):
        return 0  # a table look-up

    def filters(self, layer, weights, xp=np):
        return weights[0]


class KeptIntact(WeightsUntouched):
    """Layers whose channel mapping the engine does not follow: both sides stay as they are."""

    intact = True
    prunes_through = False

    def propagate(self, ctx, layer, node, in_atoms):
        raise UnsupportedLayerError(
            f"layer '{layer.name}' ({type(layer).__name__}) mixes channels in a way the engine does not follow",
            f"nothing to do: its channels are kept (--strict stops here instead)")


class EinsumDenseRule(KeptIntact):
    to_tfkeras = _QUANT_EDITS

    def macs(self, layer, in_shape, out_shape):
        """Product of every index size in the equation (batch of one)."""
        inp, ker = layer.get_config()["equation"].split("->")[0].replace("...", "").split(",")
        sizes = {ch: 1 if d is None else int(d) for ch, d in zip(inp[::-1], list(in_shape)[::-1])}
        sizes.update({ch: int(d) for ch, d in zip(ker[::-1], list(layer.kernel.shape)[::-1])})
        return math.prod(sizes.values())


# ---- recurrent layers --------------------------------------------------------------------------

class RecurrentRule(Rule):
    """LSTM/GRU/SimpleRNN: hidden units are new channels, coupled across the gates.

    Kernels are (in, gates·units) and (units, gates·units) with the gates side by side, so unit j
    owns column j of every gate block and row j of the recurrent kernel.  Every output (sequence,
    last state, cell state) carries the units.
    """

    consumes = True
    creates_channels = True
    to_tfkeras = (edit("seed", drop_always=True), edit("zero_output_for_mask", drop_always=True))
    to_keras3 = (edit("implementation", drop_always=True), edit("time_major", drop_if=(False,)))

    def __init__(self, gates: int):
        self.gates = gates

    def propagate(self, ctx, layer, node, in_atoms):
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        atoms = ctx.source_atoms(layer.name, int(layer.get_config()["units"]))
        return [atoms] * len(node.outputs)

    def shrink(self, layer, config, weights, keep_in, keep_out):
        gm = np.tile(keep_out, self.gates)
        kernel, rec, *bias = weights
        return dict(config, units=int(keep_out.sum())), [kernel[keep_in][:, gm], rec[keep_out][:, gm]] + [
            b[..., gm] for b in bias]

    def zero(self, layer, weights, drop_in, drop_out):
        w = list(weights)
        w[0], w[1] = w[0].copy(), w[1].copy()
        w[0][drop_in, :] = 0.0
        w[1][drop_out, :] = 0.0  # a removed unit no longer feeds the others through the recurrence
        return w

    def macs(self, layer, in_shape, out_shape):
        units = int(layer.get_config()["units"])
        steps = int(in_shape[1]) if len(in_shape) > 2 and in_shape[1] is not None else 1
        return steps * self.gates * units * (int(in_shape[-1]) + units)

    def filters(self, layer, weights, xp=np):
        units = int(weights[1].shape[0])

        def by_unit(k):
            k = xp.reshape(k, (-1, self.gates, units))
            return xp.reshape(k, (-1, units))

        return xp.concatenate([by_unit(weights[0]), by_unit(weights[1])], axis=0)


class BidirectionalRule(Rule):
    """Bidirectional(RNN): forward unit j and backward unit j are one channel (same keep-mask).

    ``concat`` outputs carry the units twice (forward then backward); sum/mul/ave carry them once.
    """

    consumes = True
    creates_channels = True

    def _parts(self, layer):
        return layer.forward_layer, layer.backward_layer, RULES[type(layer.forward_layer).__name__]

    def _check(self, layer):
        fwd = layer.forward_layer
        rule = RULES.get(type(fwd).__name__)
        if not isinstance(rule, RecurrentRule) or type(layer.backward_layer) is not type(fwd):
            raise UnsupportedLayerError(
                f"layer '{layer.name}' wraps {type(fwd).__name__}, which the engine cannot prune inside Bidirectional",
                f"protect it (--protect {layer.name})")
        if layer.merge_mode is None:
            raise UnsupportedLayerError(f"layer '{layer.name}' (Bidirectional, merge_mode=None) has two outputs",
                                        f"protect it (--protect {layer.name}) or use merge_mode='concat'")

    def propagate(self, ctx, layer, node, in_atoms):
        self._check(layer)
        _unite_shared_inputs(ctx, layer, node, in_atoms[0])
        atoms = ctx.source_atoms(layer.name, int(layer.forward_layer.units))
        merged = np.concatenate([atoms, atoms]) if layer.merge_mode == "concat" else atoms
        return [merged] + [atoms] * (len(node.outputs) - 1)

    def _unit_mask(self, layer, keep_out):
        u = int(layer.forward_layer.units)
        return keep_out[:u] if keep_out.size == 2 * u and layer.merge_mode == "concat" else keep_out

    def shrink(self, layer, config, weights, keep_in, keep_out):
        fwd, bwd, rule = self._parts(layer)
        keep_u, n = self._unit_mask(layer, keep_out), len(fwd.weights)
        config = dict(config)
        fcfg, fw = rule.shrink(fwd, config["layer"]["config"], weights[:n], keep_in, keep_u)
        config["layer"] = dict(config["layer"], config=fcfg)
        bcfg, bw = rule.shrink(bwd, bwd.get_config(), weights[n:], keep_in, keep_u)
        if "backward_layer" in config:
            config["backward_layer"] = dict(config["backward_layer"], config=bcfg)
        return config, fw + bw

    def zero(self, layer, weights, drop_in, drop_out):
        fwd, bwd, rule = self._parts(layer)
        drop_u, n = self._unit_mask(layer, drop_out), len(fwd.weights)
        return rule.zero(fwd, weights[:n], drop_in, drop_u) + rule.zero(bwd, weights[n:], drop_in, drop_u)

    def macs(self, layer, in_shape, out_shape):
        fwd, bwd, rule = self._parts(layer)
        return rule.macs(fwd, in_shape, out_shape) + rule.macs(bwd, in_shape, out_shape)

    def filters(self, layer, weights, xp=np):
        fwd, bwd, rule = self._parts(layer)
        n = len(fwd.weights)
        return xp.concatenate([rule.filters(fwd, weights[:n], xp), rule.filters(bwd, weights[n:], xp)], axis=0)


# ---- merges and shape layers -------------------------------------------------------------------

class MergeRule(ChannelPreserving):
    """Add/Subtract/Multiply/Average/Maximum/Minimum: equal positions of all inputs are one channel.

    An input whose channel axis has size 1 broadcasts (e.g. a gate) and is not coupled.
    """

    def propagate(self, ctx, layer, node, in_atoms):
        width = int(node.output_shapes[0][-1]) if len(node.output_shapes[0]) > 1 else 1
        for s in node.input_shapes:
            if not (len(s) > 1 and int(s[-1]) in (width, 1)):
                raise UnsupportedLayerError(
                    f"layer '{layer.name}' merges inputs of shapes {node.input_shapes}",
                    f"protect it (--protect {layer.name})")
        full = [a for a, s in zip(in_atoms, node.input_shapes) if len(s) > 1 and int(s[-1]) == width]
        for other in full[1:]:
            ctx.unite(full[0], other)
        return [full[0]]


class TFOpLambdaRule(ChannelPreserving):
    """tf-keras TFOpLambda (``x + 3.0``, ``tf.nn.relu6(x)``): elementwise ops pass channels, or
    couple them like a merge when two tensors meet; any other op is not followed."""

    ELEMENTWISE = {"__operators__.add", "math.add", "math.subtract", "math.multiply", "math.truediv",
                   "math.divide", "nn.relu", "nn.relu6", "math.sigmoid", "math.tanh", "nn.silu", "nn.swish",
                   "math.maximum", "math.minimum"}

    def propagate(self, ctx, layer, node, in_atoms):
        fn = layer.get_config().get("function")
        if fn not in self.ELEMENTWISE:
            raise UnsupportedLayerError(f"layer '{layer.name}' applies tf.{fn}, which the engine does not follow",
                                        f"protect it (--protect {layer.name})")
        if len(in_atoms) > 1:
            return MergeRule().propagate(ctx, layer, node, in_atoms)
        return [in_atoms[0]]


class ConcatenateRule(ChannelPreserving):
    def propagate(self, ctx, layer, node, in_atoms):
        rank = len(node.output_shapes[0])
        axis = layer.get_config().get("axis", -1) % rank
        if axis == rank - 1:
            return [np.concatenate(in_atoms)]
        for other in in_atoms[1:]:
            ctx.unite(in_atoms[0], other)
        return [in_atoms[0]]


def _merged_trailing(in_shape, out_shape) -> int | None:
    """How many input positions the output's last axis merges, if it is the input's trailing axes
    flattened (the channel axis last among them); None otherwise."""
    out_last = out_shape[-1]
    if out_last is None:
        return None
    size = 1
    for d in reversed(in_shape[1:]):
        if d is None:
            return None
        size *= int(d)
        if size == int(out_last):
            return size // int(in_shape[-1])
        if size > int(out_last):
            return None
    return None


class ReshapeRule(ChannelPreserving):
    """Reshape that keeps the channel axis last (adding/removing unit axes, (C,) → (1, 1, C),
    (H, W, C) → (H·W, C)) passes channels through; one that merges trailing axes into the last
    (Flatten-like) tiles them.  Only a reshape that splits or moves the channel axis mixes them."""

    def propagate(self, ctx, layer, node, in_atoms):
        in_shape, out_shape = node.input_shapes[0], node.output_shapes[0]
        if len(in_shape) > 1 and len(out_shape) > 1:
            tiles = _merged_trailing(in_shape, out_shape)
            if tiles is not None:
                return [np.tile(in_atoms[0], tiles)]
        raise UnsupportedLayerError(
            f"layer '{layer.name}' (Reshape {in_shape} → {out_shape}) moves the channel axis",
            f"protect it (--protect {layer.name}) to keep its channels intact",
        )

    def shrink(self, layer, config, weights, keep_in, keep_out):
        target = list(config["target_shape"])
        if target[-1] != -1:
            target[-1] = int(keep_out.sum())
        return dict(config, target_shape=tuple(target)), weights


class FlattenRule(ChannelPreserving):
    """Flatten (channels_last): position p of the output carries channel p mod C of the input."""

    def propagate(self, ctx, layer, node, in_atoms):
        _require_channels_last(layer)
        spatial = math.prod(int(d) for d in node.input_shapes[0][1:-1])
        return [np.tile(in_atoms[0], spatial)]


class PermuteRule(ChannelPreserving):
    """Permute that leaves the channel axis last passes channels through; moving it mixes them."""

    def propagate(self, ctx, layer, node, in_atoms):
        dims = tuple(layer.get_config()["dims"])
        if dims[-1] != len(dims):
            raise UnsupportedLayerError(
                f"layer '{layer.name}' (Permute {dims}) moves the channel axis",
                f"protect it (--protect {layer.name}) to keep its channels intact")
        return [in_atoms[0]]


_PASSTHROUGH = [
    "ReLU", "ELU", "ThresholdedReLU", "Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "Identity", "RepeatVector",
]

RULES: dict[str, Rule] = {name: Passthrough() for name in _PASSTHROUGH}
RULES.update({
    "InputLayer": InputRule(),
    "LeakyReLU": LeakyReLURule(),
    "ZeroPadding1D": ZeroPadding1DRule(),
    "SpatialDropout1D": SpatialDropoutRule(), "SpatialDropout2D": SpatialDropoutRule(),
    "SpatialDropout3D": SpatialDropoutRule(),
    "Activation": ActivationRule(),
    "Softmax": ChannelMixingActivation(),
    "Rescaling": RescalingRule(),
    "BatchNormalization": BatchNormRule(),
    "LayerNormalization": LayerNormRule(),
    "Normalization": NormalizationRule(),
    "PReLU": PReLURule(),
    "Conv1D": ConvRule(), "Conv2D": ConvRule(), "Conv3D": ConvRule(),
    "Conv1DTranspose": ConvTransposeRule(), "Conv2DTranspose": ConvTransposeRule(),
    "Conv3DTranspose": ConvTransposeRule(),
    "DepthwiseConv1D": DepthwiseRule(), "DepthwiseConv2D": DepthwiseRule(),
    "SeparableConv1D": SeparableRule(), "SeparableConv2D": SeparableRule(),
    "Dense": DenseRule(),
    "Embedding": EmbeddingRule(),
    "EinsumDense": EinsumDenseRule(),
    "LSTM": RecurrentRule(gates=4), "GRU": RecurrentRule(gates=3), "SimpleRNN": RecurrentRule(gates=1),
    "Bidirectional": BidirectionalRule(),
    "Add": MergeRule(), "Subtract": MergeRule(), "Multiply": MergeRule(), "Average": MergeRule(),
    "Maximum": MergeRule(), "Minimum": MergeRule(),
    "Concatenate": ConcatenateRule(),
    "TFOpLambda": TFOpLambdaRule(),
    "Flatten": FlattenRule(),
    "Reshape": ReshapeRule(),
    "Permute": PermuteRule(),
})


def rule_for(layer) -> Rule | None:
    """The rule for `layer`'s exact class (a subclass of a Keras layer is not the Keras layer)."""
    return RULES.get(type(layer).__name__)


def rule_for_class(class_name: str) -> Rule | None:
    return RULES.get(class_name)

