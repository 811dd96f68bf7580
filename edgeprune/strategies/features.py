"""Input-feature pruning for Dense-first models (tabular data, MLPs on flattened images).

The first Dense layer's kernel has one row per input feature; dropping a feature removes that
row and the feature from the input.  The model then takes ``x[:, kept]`` (of the flattened
input), so the data must be sliced the same way: :func:`slice_features` / :func:`slice_dataset`.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import tensorflow as tf

from edgeprune.errors import EdgepruneError, UnsupportedLayerError
from edgeprune.keras import keras
from edgeprune.losses import label_nll, output_kind
from edgeprune.pruning.graph import flatten_model

METHODS = ("weight_norm", "gradient")
SCORE_SAMPLES = 1024


def _first_dense(model):
    """(flat model, input layer, optional Flatten layer, first Dense) or an error saying why not."""
    flat = flatten_model(model)
    if len(flat.inputs) != 1:
        raise UnsupportedLayerError(f"model '{model.name}' has {len(flat.inputs)} inputs", "input-feature pruning needs one input")
    inp = flat.inputs[0]._keras_history.layer
    flatten = None
    layer = _only_consumer(flat, inp)
    if type(layer).__name__ == "Flatten":
        flatten, layer = layer, _only_consumer(flat, layer)
    if type(layer).__name__ != "Dense" or len(layer.input_shape) != 2:
        raise UnsupportedLayerError(
            f"model '{model.name}': the input feeds {type(layer).__name__} '{layer.name}', not a Dense layer",
            "input-feature pruning needs Input → [Flatten] → Dense; use channel pruning (edgeprune.prune) otherwise")
    return flat, inp, flatten, layer


def _only_consumer(flat, layer):
    nodes = layer._outbound_nodes
    if len(nodes) != 1:
        raise UnsupportedLayerError(f"layer '{layer.name}' feeds {len(nodes)} layers",
                                    "input-feature pruning needs the input to feed one Dense layer (optionally via Flatten)")
    return nodes[0].layer


def feature_scores(model, dataset=None, method: str = "weight_norm") -> np.ndarray:
    """One importance score per (flattened) input feature; higher = more important.

    weight_norm: L2 norm of the feature's kernel row, times the feature's RMS on the training data
    when a dataset is given (a weight on a feature that is always 0 contributes nothing; its row
    keeps its random initial values, so the norm alone would not see it).
    gradient: mean |x_f · ∂loss/∂x_f| over validation batches (first-order Taylor on the input).
    """
    if method not in METHODS:
        raise EdgepruneError(f"unknown feature-pruning method '{method}'", f"use one of {', '.join(METHODS)}")
    flat, _inp, _flatten, dense = _first_dense(model)
    kernel = dense.get_weights()[0]
    if method == "weight_norm":
        score = np.linalg.norm(kernel, axis=1)
        if dataset is not None:
            x = dataset.x_train[:SCORE_SAMPLES].reshape(min(len(dataset.x_train), SCORE_SAMPLES), -1)
            score = score * np.sqrt((x.astype(np.float64) ** 2).mean(axis=0))
        return score
    if dataset is None or len(dataset.x_val) == 0:
        raise EdgepruneError("method 'gradient' needs validation data", "pass a dataset, or use method='weight_norm'")

    kind = output_kind(model)
    total = np.zeros(kernel.shape[0])
    n = 0
    xv, yv = dataset.x_val[:SCORE_SAMPLES], dataset.y_val[:SCORE_SAMPLES]
    for i in range(0, len(xv), 256):
        x = tf.convert_to_tensor(xv[i:i + 256])
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = label_nll(flat(x, training=False), yv[i:i + 256], kind)
        grad = tape.gradient(loss, x).numpy()
        total += np.abs((np.asarray(x) * grad).reshape(len(grad), -1)).sum(axis=0)
        n += len(grad)
    return total / n


def prune_input_features(model, dataset=None, *, keep: int | None = None, ratio: float | None = None,
                         method: str = "weight_norm"):
    """Drop the least important input features; returns ``(model, kept_indices)``.

    keep: how many features stay, or ratio: the fraction removed.  The new model's input is the
    flat vector of kept features (indices into the flattened original input, ascending).
    """
    flat, inp, flatten, dense = _first_dense(model)
    n = int(dense.get_weights()[0].shape[0])
    if (keep is None) == (ratio is None):
        raise EdgepruneError("pass exactly one of keep= (features kept) or ratio= (fraction removed)", "e.g. ratio=0.5")
    if keep is None:
        if not 0.0 <= ratio < 1.0:
            raise EdgepruneError(f"feature ratio {ratio} is out of range", "use a fraction in [0, 1)")
        keep = n - int(math.floor(ratio * n))
    if not 1 <= keep <= n:
        raise EdgepruneError(f"keep={keep} features is out of range for {n} inputs", f"use 1..{n}")
    scores = feature_scores(model, dataset, method)
    kept = np.sort(np.argsort(-scores, kind="stable")[:keep])

    cfg = flat.get_config()
    layers_cfg = []
    for entry in cfg["layers"]:
        if flatten is not None and entry["name"] == flatten.name:
            continue
        if entry["name"] == inp.name:
            entry["config"]["batch_input_shape"] = [None, int(keep)]
        for node in entry.get("inbound_nodes", []):
            for link in node:
                if flatten is not None and link[0] == flatten.name:
                    link[0], link[1], link[2] = inp.name, 0, 0
        layers_cfg.append(entry)
    cfg["layers"] = layers_cfg
    new = keras.Model.from_config(cfg)
    for layer in new.layers:
        weights = flat.get_layer(layer.name).get_weights()
        if layer.name == dense.name:
            weights = _sliced_dense(weights, kept, dataset)
        if weights:
            layer.set_weights(weights)
    return new, kept.tolist()


def feature_means(dataset, n: int) -> np.ndarray:
    """Mean of each flattened input feature over (up to SCORE_SAMPLES) training samples."""
    x = dataset.x_train[:SCORE_SAMPLES]
    return x.reshape(len(x), -1).astype(np.float64).mean(axis=0) if len(x) else np.zeros(n)


def _sliced_dense(weights, kept, dataset):
    """Kernel rows of the kept features; the dropped features' mean contribution moves into the bias.

    Dropping a feature then acts like feeding its training mean instead of zero, which keeps the
    layer's pre-activations centred (without data, the dropped features count as zero).
    """
    kernel = weights[0]
    dropped = np.setdiff1d(np.arange(kernel.shape[0]), kept)
    out = [kernel[kept]]
    if len(weights) > 1:
        bias = weights[1]
        if dataset is not None and len(dropped):
            bias = (bias + feature_means(dataset, kernel.shape[0])[dropped] @ kernel[dropped]).astype(bias.dtype)
        out.append(bias)
    return [*out, *weights[2:]]


def slice_features(x: np.ndarray, kept) -> np.ndarray:
    """The inputs a feature-pruned model takes: flattened per sample, kept columns only."""
    x = np.asarray(x)
    return x.reshape(len(x), -1)[:, np.asarray(kept, dtype=np.int64)]


def slice_dataset(dataset, kept):
    """A copy of `dataset` with every split's inputs sliced to the kept features."""
    return replace(dataset, x_train=slice_features(dataset.x_train, kept), x_val=slice_features(dataset.x_val, kept),
                   x_test=slice_features(dataset.x_test, kept))
