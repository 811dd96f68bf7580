"""Keras 3 layers of edgeprune's native quantization-aware training (TensorFlow backend).

The arithmetic follows TFLite's int8 spec, so that the TFLite converter, which recognizes
``tf.quantization.fake_quant_with_min_max_vars[_per_channel]``, writes exactly the integers trained with:

* weights: symmetric int8 in the narrow range [-127, 127], scale = max|w| / 127 — per output channel
  for Conv2D / DepthwiseConv2D / Conv1D (for a depthwise kernel the channel is ``in * multiplier``,
  TFLite's quantized dimension), per tensor for Dense (the converter cannot carry a per-channel
  fake-quant through the transpose it puts in front of FULLY_CONNECTED);
* activations: asymmetric int8 per tensor; the range is an exponential moving average of the batch
  min/max (like tfmot's MovingAverageQuantizer), but set from the first training batch instead of
  starting at [-6, 6], and always holding 0;
* a BatchNormalization after a conv is folded into it *before* the weight fake-quant, with the moving
  variance (what the converter folds with), plus the batch-statistics correction of Jacob et al. 2018
  while training, so that the layer trains like conv + BN and infers like the folded int8 conv.

Layers register under package ``edgeprune``: importing this module (or
:mod:`edgeprune.quantize.native_qat`) is enough for plain ``keras.models.load_model`` to read them.
"""
from __future__ import annotations

from edgeprune import _env  # noqa: F401

import keras  # noqa: E402  (Keras 3, whatever tf.keras is in this process)
import tensorflow as tf  # noqa: E402

# a zero (e.g. pruned) channel would give a 0 scale (NaN fake-quant) and an int32 bias that overflows
MIN_WEIGHT_RANGE = 1e-4
POST_ACTIVATIONS = {"linear": None, "relu": tf.nn.relu, "relu6": tf.nn.relu6}
# TFLite gives these ops fixed int8 output ranges: quantize their input, never their output
FIXED_RANGE_ACTIVATIONS = {"softmax": tf.nn.softmax, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh}


def activation_name(activation) -> str:
    if activation is None:
        return "linear"
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else getattr(activation, "__name__", str(name))


def quantize_weights(w, per_channel: bool = True):
    """Symmetric narrow-range int8 fake-quant of a kernel, per last axis or per tensor."""
    if per_channel:
        m = tf.reduce_max(tf.abs(w), axis=list(range(len(w.shape) - 1)))
        m = tf.maximum(m, MIN_WEIGHT_RANGE)
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(w, -m, m, num_bits=8, narrow_range=True)
    m = tf.maximum(tf.reduce_max(tf.abs(w)), MIN_WEIGHT_RANGE)
    return tf.quantization.fake_quant_with_min_max_vars(w, -m, m, num_bits=8, narrow_range=True)


def add_range(layer, prefix: str):
    """Non-trainable min/max of an activation, and whether a training batch has set them yet."""
    const = keras.initializers.Constant
    return (layer.add_weight(name=f"{prefix}_min", shape=(), initializer=const(-6.0), trainable=False),
            layer.add_weight(name=f"{prefix}_max", shape=(), initializer=const(6.0), trainable=False),
            layer.add_weight(name=f"{prefix}_seen", shape=(), initializer=const(0.0), trainable=False))


def quantize_activation(x, rng, decay: float, training):
    """Asymmetric per-tensor int8 fake-quant; in training the range first tracks the batch (EMA)."""
    lo, hi, seen = rng
    if training:
        batch_lo = tf.minimum(tf.reduce_min(x), 0.0)
        batch_hi = tf.maximum(tf.reduce_max(x), 0.0)
        first = tf.equal(seen, 0.0)
        new_lo = tf.stop_gradient(tf.where(first, batch_lo, decay * lo + (1.0 - decay) * batch_lo))
        new_hi = tf.stop_gradient(tf.where(first, batch_hi, decay * hi + (1.0 - decay) * batch_hi))
        lo.assign(new_lo)
        hi.assign(new_hi)
        seen.assign(1.0)
        return tf.quantization.fake_quant_with_min_max_vars(x, new_lo, new_hi, num_bits=8, narrow_range=False)
    return tf.quantization.fake_quant_with_min_max_vars(x, tf.convert_to_tensor(lo), tf.convert_to_tensor(hi),
                                                        num_bits=8, narrow_range=False)


@keras.saving.register_keras_serializable(package="edgeprune")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantizes its input (a model input, or an Add/Concatenate/ReLU output) to int8."""

    def __init__(self, ema_decay: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.ema_decay = float(ema_decay)

    def build(self, input_shape):
        self.range = add_range(self, "range")

    def call(self, inputs, training=None):
        return quantize_activation(inputs, self.range, self.ema_decay, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ema_decay": self.ema_decay}


def _conv2d(x, kernel, strides, padding, dilations, training):
    """Conv2D; a dilated one goes through space-to-batch in training (TF's CPU kernels have no dilated
    gradient), and as one dilated op for the converter (which does not fuse the space-to-batch form
    once the kernel is fake-quantized)."""
    if training and tuple(dilations) != (1, 1):
        return tf.nn.convolution(x, kernel, strides=strides, padding=padding.upper(), dilations=dilations)
    return tf.nn.conv2d(x, kernel, strides=(1, *strides, 1), padding=padding.upper(), dilations=(1, *dilations, 1))


class _QuantCompute:
    """Shared part of the quantized conv/dense layers: BN folding, activation, output fake-quant.

    ``batchnorm``: None, or the folded BatchNormalization's ``{epsilon, momentum, center, scale}``.
    ``quantize_output``: False when a following ReLU layer quantizes (TFLite fuses the ReLU).
    """

    per_channel = True

    def __init__(self, *args, batchnorm=None, quantize_output=True, ema_decay=0.99, **kwargs):
        super().__init__(*args, **kwargs)  # the Keras layer after this mixin in the MRO
        self.batchnorm = dict(batchnorm) if batchnorm else None
        self.quantize_output = bool(quantize_output)
        self.ema_decay = float(ema_decay)
        name = activation_name(self.activation)
        if name not in POST_ACTIVATIONS and name not in FIXED_RANGE_ACTIVATIONS:
            raise ValueError(f"activation '{name}' has no int8 QAT form (use relu, relu6, linear, softmax, sigmoid, tanh)")
        if name in FIXED_RANGE_ACTIVATIONS and not self.quantize_output:
            raise ValueError(f"a layer ending in {name} must quantize its pre-activation output")
        self.activation_kind = name

    def _build_quant(self, channels: int):
        self.channels = channels
        if self.batchnorm:
            bn = self.batchnorm
            self.bn_gamma = self.add_weight(name="bn_gamma", shape=(channels,), initializer="ones", trainable=bn["scale"])
            self.bn_beta = self.add_weight(name="bn_beta", shape=(channels,), initializer="zeros", trainable=bn["center"])
            self.bn_moving_mean = self.add_weight(name="bn_moving_mean", shape=(channels,), initializer="zeros",
                                                  trainable=False)
            self.bn_moving_variance = self.add_weight(name="bn_moving_variance", shape=(channels,),
                                                      initializer="ones", trainable=False)
        if self.quantize_output:
            self.output_range = add_range(self, "output")

    # Keras's conv/dense layers save only their kernel/bias (and Keras-quantization) variables by name:
    # the generic Layer form saves every variable this layer builds, in build order
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "batchnorm": self.batchnorm, "quantize_output": self.quantize_output,
                "ema_decay": self.ema_decay}

    # per layer type
    def _apply(self, x, kernel, training=False):
        """The linear op with `kernel`, no bias."""
        raise NotImplementedError

    def _channel_shape(self, v):
        """A per-output-channel vector shaped to scale the kernel."""
        return v

    def _quantize_kernel(self, k):
        return quantize_weights(k, self.per_channel)

    def folded_kernel_and_bias(self):
        """The kernel and bias TFLite will hold (BN folded with the moving statistics), in float."""
        k = tf.convert_to_tensor(self.kernel)
        b = tf.convert_to_tensor(self.bias) if self.use_bias else tf.zeros((self.channels,))
        if not self.batchnorm:
            return k, b
        inv = self.bn_gamma * tf.math.rsqrt(self.bn_moving_variance + self.batchnorm["epsilon"])
        return k * self._channel_shape(inv), self.bn_beta + (b - self.bn_moving_mean) * inv

    def call(self, inputs, training=None):
        bias = self.bias if self.use_bias else 0.0
        if not self.batchnorm:
            y = self._apply(inputs, self._quantize_kernel(self.kernel), training) + bias
        elif training:
            # Jacob et al. 2018, fig. C.8: weights folded with the moving sigma are what gets quantized;
            # a per-channel correction turns the output into batch-normalized statistics while training.
            eps = self.batchnorm["epsilon"]
            float_out = self._apply(inputs, self.kernel, training) + bias
            mean, var = tf.nn.moments(float_out, axes=list(range(len(float_out.shape) - 1)))
            inv_moving = self.bn_gamma * tf.math.rsqrt(self.bn_moving_variance + eps)
            inv_batch = tf.math.rsqrt(var + eps)
            y = self._apply(inputs, self._quantize_kernel(self.kernel * self._channel_shape(inv_moving)), training)
            y = y * (tf.sqrt(self.bn_moving_variance + eps) * inv_batch) + (
                self.bn_beta + self.bn_gamma * (bias - mean) * inv_batch)
            m = self.batchnorm["momentum"]
            self.bn_moving_mean.assign(self.bn_moving_mean * m + tf.stop_gradient(mean) * (1.0 - m))
            self.bn_moving_variance.assign(self.bn_moving_variance * m + tf.stop_gradient(var) * (1.0 - m))
        else:
            kernel, folded_bias = self.folded_kernel_and_bias()
            y = self._apply(inputs, self._quantize_kernel(kernel)) + folded_bias
        if self.activation_kind in FIXED_RANGE_ACTIVATIONS:
            y = quantize_activation(y, self.output_range, self.ema_decay, training)
            return FIXED_RANGE_ACTIVATIONS[self.activation_kind](y)
        post = POST_ACTIVATIONS[self.activation_kind]
        if post is not None:
            y = post(y)
        if self.quantize_output:
            y = quantize_activation(y, self.output_range, self.ema_decay, training)
        return y


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantConv2D(_QuantCompute, keras.layers.Conv2D):
    """Conv2D (channels_last, groups=1) with per-channel int8 weights and optional folded BN."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quant(self.filters)

    def _apply(self, x, kernel, training=False):
        return _conv2d(x, kernel, self.strides, self.padding, self.dilation_rate, training)


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantConv1D(_QuantCompute, keras.layers.Conv1D):
    """Conv1D (channels_last, groups=1) run as a Conv2D over a height-1 image, as TFLite runs it."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quant(self.filters)

    def _quantize_kernel(self, k):
        return quantize_weights(tf.expand_dims(k, 0))  # 4-D first: TFLite cannot re-axis a quantized ExpandDims

    def _apply(self, x, kernel, training=False):
        if len(kernel.shape) == 3:
            kernel = tf.expand_dims(kernel, 0)
        padding = self.padding
        if padding == "causal":
            x = tf.pad(x, [[0, 0], [self.dilation_rate[0] * (self.kernel_size[0] - 1), 0], [0, 0]])
            padding = "valid"
        y = _conv2d(tf.expand_dims(x, 1), kernel, (1, self.strides[0]), padding, (1, self.dilation_rate[0]), training)
        return tf.squeeze(y, 1)


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantDepthwiseConv2D(_QuantCompute, keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D with weights quantized per output channel (``in * depth_multiplier``)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quant(int(input_shape[-1]) * self.depth_multiplier)

    def _channel_shape(self, v):
        return tf.reshape(v, self.kernel.shape[2:])

    def _quantize_kernel(self, k):
        shape = k.shape
        flat = tf.reshape(k, (shape[0], shape[1], shape[2] * shape[3]))
        return tf.reshape(quantize_weights(flat), shape)

    def _apply(self, x, kernel, training=False):
        return tf.nn.depthwise_conv2d(x, kernel, strides=(1, *self.strides, 1), padding=self.padding.upper(),
                                      dilations=tuple(self.dilation_rate))


@keras.saving.register_keras_serializable(package="edgeprune")
class QuantDense(_QuantCompute, keras.layers.Dense):
    """Dense with per-tensor int8 weights (see the module docstring for why not per channel)."""

    per_channel = False

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quant(self.units)

    def _apply(self, x, kernel, training=False):
        return tf.tensordot(x, kernel, axes=1) if len(x.shape) > 2 else tf.matmul(x, kernel)


QUANT_LAYERS = (ActivationQuantizer, QuantConv2D, QuantConv1D, QuantDepthwiseConv2D, QuantDense)
