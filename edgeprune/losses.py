"""What a classifier outputs (probabilities or logits) and the loss terms the training loop combines.

A model ends either in a softmax (``probabilities``) or in a plain linear layer (``logits``, trained
with ``from_logits=True``).  :func:`output_kind` tells them apart once, from the model's layers;
every loss (fine-tuning, distillation, QAT, sparsity training, the Taylor criterion) follows it.
Accuracy (argmax) is the same for both.

A loss term is a callable ``term(x, y, outputs) -> scalar`` with a ``name`` (a history key, or
None for terms only summed into ``loss``).  :class:`edgeprune.train.Trainer` minimises
Σ weight · term; the sparsity penalty lives with its strategy (``strategies/sparsity.py``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeprune.keras import keras

PROBABILITIES = "probabilities"
LOGITS = "logits"
OUTPUT_KINDS = (PROBABILITIES, LOGITS)

PROB_ACTIVATIONS = {"softmax", "sigmoid"}
# log_softmax is logits up to a per-sample constant, which softmax and cross-entropy ignore
LOGIT_ACTIVATIONS = {"linear", "log_softmax", None}
PASS_THROUGH = {"Flatten", "Reshape", "Dropout", "Identity", "Activation"}  # looked through when linear
_EPS = 1e-7


def _activation_name(layer):
    """The name of a layer's activation, looking through tfmot's QuantizeAwareActivation config."""
    act = layer.get_config().get("activation", "<none>")
    while isinstance(act, dict):
        act = act.get("config", {}).get("activation", act.get("class_name"))
    return act


def _producer(tensor):
    """(layer, node) that made a Keras tensor, looking inside a nested model."""
    history = tensor._keras_history
    layer = history.layer
    if isinstance(layer, keras.Model) and layer.outputs:
        return _producer(layer.outputs[history.tensor_index])
    return layer, layer._inbound_nodes[history.node_index]


def _structural_kind(model) -> str | None:
    """The kind read from the layers that produce the output, or None when they do not say."""
    tensor = model.outputs[0]
    for _ in range(len(model.layers) + 1):
        layer, node = _producer(tensor)
        while isinstance(getattr(layer, "layer", None), keras.layers.Layer):  # QAT / pruning wrappers
            layer = layer.layer
        kind = type(layer).__name__
        act = "softmax" if kind == "Softmax" else _activation_name(layer)
        if act in PROB_ACTIVATIONS:
            return PROBABILITIES
        if kind in PASS_THROUGH and act in ("linear", "<none>") and len(node.keras_inputs) == 1:
            tensor = node.keras_inputs[0]
            continue
        return LOGITS if act in LOGIT_ACTIVATIONS else None
    return None


def output_kind(model) -> str:
    """``"probabilities"`` when the model ends in a softmax, else ``"logits"``.

    Read from the output layer (through Flatten/Reshape/Dropout, QAT and pruning wrappers and a
    nested last model).  An unfamiliar last layer is judged by its outputs on a zero input: rows
    that are non-negative and sum to 1 are probabilities.
    """
    kind = _structural_kind(model)
    if kind is not None:
        return kind
    zeros = [np.zeros((2, *inp.shape[1:]), inp.dtype.as_numpy_dtype) for inp in model.inputs]
    out = np.asarray(model(zeros if len(zeros) > 1 else zeros[0], training=False), np.float64)
    sums = out.reshape(len(out), -1).sum(axis=-1)
    return PROBABILITIES if (out >= 0).all() and np.allclose(sums, 1.0, atol=1e-3) else LOGITS


def as_logits(outputs, kind: str):
    """Logits for either kind: log p of probabilities gives the same softmax (and softening ÷T)."""
    if kind == LOGITS:
        return outputs
    return tf.math.log(tf.clip_by_value(outputs, _EPS, 1.0))


def label_nll(outputs, y, kind: str):
    """Σ −log p(true label), written out so the gradient flows through the output tensor itself.

    (Keras' cross-entropy reads the logits behind a softmax, which cuts the gradient path that
    data-driven importance criteria follow back from the output.)
    """
    log_p = tf.nn.log_softmax(as_logits(outputs, kind))
    return -tf.reduce_sum(tf.gather(log_p, tf.cast(y, tf.int32), axis=-1, batch_dims=1))


class HardLabelLoss:
    """Sparse categorical cross-entropy on the true labels, with ``from_logits`` from the output kind."""

    name = None

    def __init__(self, kind: str):
        self.kind = kind
        self.ce = keras.losses.SparseCategoricalCrossentropy(from_logits=kind == LOGITS)

    def __call__(self, x, y, outputs):
        return self.ce(y, outputs)


class DistillationLoss:
    """T² · KL(teacher ‖ student), both softened at temperature T (Hinton et al. 2015).

    Softening divides *logits* by T; a softmax output is turned back into logits with log p.
    """

    name = None

    def __init__(self, teacher, student_kind: str, temperature: float):
        self.teacher = teacher
        self.teacher_kind = output_kind(teacher)
        self.student_kind = student_kind
        self.temperature = float(temperature)
        self.kl = keras.losses.KLDivergence()

    def _soft(self, outputs, kind):
        return tf.nn.softmax(as_logits(outputs, kind) / self.temperature)

    def __call__(self, x, y, outputs):
        target = self._soft(self.teacher(x, training=False), self.teacher_kind)
        return self.kl(target, self._soft(outputs, self.student_kind)) * self.temperature ** 2
