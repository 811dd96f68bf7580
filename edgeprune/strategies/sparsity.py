"""Sparsity training: a penalty that drives whole channels towards zero before pruning.

``bn_gamma``: L1 on BatchNormalization γ (network slimming, Liu et al. 2017) — channels whose γ
reaches ~0 output a constant and are the obvious ones to remove.  ``group_lasso``: the L2 norm of
each output filter, summed (Wen et al. 2016) — filters are pushed to zero as a whole.  The penalty
is a loss term of the one training loop (:func:`edgeprune.train.fit`), not a loss on the model, so
the saved model carries no extra losses.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeprune.errors import EdgepruneError
from edgeprune.pruning.graph import flatten_model
from edgeprune.pruning.rules import rule_for
from edgeprune.train import fit

PENALTIES = ("bn_gamma", "group_lasso")


class FilterKernel:
    """A layer's filters as its rule lays them out: one column per output channel."""

    def __init__(self, layer, rule):
        self.layer, self.rule = layer, rule

    def columns(self, xp):
        """(rows, channels) view of the live variables (xp: tf.experimental.numpy) or values (numpy)."""
        weights = self.layer.weights if xp is not np else self.layer.get_weights()
        return self.rule.filters(self.layer, weights, xp)


def penalty_variables(model, penalty: str) -> list:
    """What the penalty acts on: BN γ variables, or the filters of every layer that makes channels."""
    flat_names = {l.name for l in flatten_model(model, copy=False).layers}
    out_names = {t._keras_history.layer.name for t in model.outputs}
    found = []
    for layer in _all_layers(model):
        if layer.name not in flat_names:
            continue
        kind, rule = type(layer).__name__, rule_for(layer)
        if penalty == "bn_gamma" and kind == "BatchNormalization" and layer.scale:
            found.append(layer.gamma)
        elif (penalty == "group_lasso" and rule is not None and rule.creates_channels and layer.weights
              and layer.name not in out_names and rule.filters(layer, layer.get_weights()) is not None):
            found.append(FilterKernel(layer, rule))
    if not found:
        what = "BatchNormalization layers" if penalty == "bn_gamma" else "conv/dense layers (besides the output)"
        raise EdgepruneError(f"sparsity penalty '{penalty}' needs {what}, model '{model.name}' has none",
                             "use penalty='group_lasso'" if penalty == "bn_gamma" else "use a model with conv/dense layers")
    return found


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        else:
            yield layer


def penalty_value(variables, penalty: str):
    """Σ|γ| or Σ_filters ‖W_f‖₂ (a TensorFlow scalar)."""
    if penalty == "bn_gamma":
        return tf.add_n([tf.reduce_sum(tf.abs(v)) for v in variables])
    terms = []
    for v in variables:
        w = v.columns(tf.experimental.numpy)
        terms.append(tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(w), axis=0) + 1e-12)))
    return tf.add_n(terms)


class SparsityPenalty:
    """Loss term for :func:`edgeprune.train.fit`: the penalty on the model's channel variables."""

    name = "penalty"

    def __init__(self, model, penalty: str):
        self.penalty = penalty
        self.targets = penalty_variables(model, penalty)

    def __call__(self, x, y, outputs):
        return penalty_value(self.targets, self.penalty)


def sparsity_train(model, dataset, *, epochs: int, penalty: str = "bn_gamma", strength: float = 1e-4,
                   learning_rate: float = 1e-3, batch_size: int = 128, max_train_samples: int | None = None,
                   seed: int = 0, callbacks=(), lr_schedule: str = "constant") -> dict:
    """Train `model` in place with cross-entropy + strength · penalty; returns the per-epoch history.

    History keys: loss, penalty, accuracy, val_loss, val_accuracy (validation without penalty).
    """
    if penalty not in PENALTIES:
        raise EdgepruneError(f"unknown sparsity penalty '{penalty}'", f"use one of {', '.join(PENALTIES)}")
    if strength < 0 or epochs < 1:
        raise EdgepruneError("sparsity training needs epochs >= 1 and strength >= 0", "e.g. epochs=5, strength=1e-4")
    result = fit(model, dataset, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                 extra_terms=[(strength, SparsityPenalty(model, penalty))], patience=None,
                 max_train_samples=max_train_samples, seed=seed, callbacks=callbacks, lr_schedule=lr_schedule)
    return result.history


def channel_magnitudes(model, penalty: str) -> np.ndarray:
    """The per-channel quantity the penalty shrinks (|γ| or filter L2 norms), concatenated."""
    parts = []
    for v in penalty_variables(model, penalty):
        parts.append(np.abs(np.asarray(v.numpy())) if penalty == "bn_gamma" else np.linalg.norm(v.columns(np), axis=0))
    return np.concatenate(parts)
