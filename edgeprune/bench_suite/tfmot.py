"""TF-MOT magnitude pruning: the peer baseline of the bench, not edgeprune's product.

TF-MOT's documented recipe on the group's trained baseline: ``prune_low_magnitude`` with
PolynomialDecay to a target sparsity over the group's epoch budget, then ``strip_pruning``. The
result is saved as a model file; the bench then runs it through the product's PTQ, export and
benchmark steps like any user model. Its masks zero weights but keep every channel, so the dense
file and the instructions stay the same (only gzip shrinks).
"""
from __future__ import annotations

import math

import numpy as np

from edgeprune.keras import keras
from edgeprune.quantize.qat import import_tfmot
from edgeprune.train import fit


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, math.ceil(n_train / batch_size))


def pruning_schedule_steps(total_steps: int) -> tuple[int, int]:
    """(end_step, frequency) that really reach the target within `total_steps`.

    tfmot's default ``frequency=100`` never updates the mask on short runs; here the mask is
    updated ~10 times and sparsity reaches its target at ~80% of the steps, leaving the rest to recover.
    """
    end = max(1, int(total_steps * 0.8))
    frequency = max(1, end // 10)
    return (end // frequency) * frequency, frequency


def weight_sparsity(model) -> float:
    """Fraction of exactly-zero weights in the Conv/Dense kernels (what magnitude pruning zeroes)."""
    zeros = total = 0
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None or type(layer).__name__ not in ("Conv2D", "Dense"):
            continue
        w = np.asarray(kernel.numpy())
        zeros += int(np.sum(w == 0))
        total += w.size
    return zeros / total if total else 0.0


def _wrap_prunable(model, **prune_kwargs):
    """Clone `model` with `prune_low_magnitude` on each Conv2D/Dense layer, weights copied over."""
    tfmot = import_tfmot()

    def clone_fn(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if type(layer).__name__ not in ("Conv2D", "Dense"):
            return fresh
        return tfmot.sparsity.keras.prune_low_magnitude(fresh, **prune_kwargs)

    wrapped = keras.models.clone_model(model, clone_function=clone_fn)
    for layer in wrapped.layers:
        inner = getattr(layer, "layer", layer)
        source = model.get_layer(inner.name)
        if source.weights:
            inner.set_weights(source.get_weights())
    return wrapped


def magnitude_prune(model, dataset, *, sparsity: float, epochs: int, learning_rate: float, batch_size: int,
                    seed: int = 0):
    """PolynomialDecay(0 → sparsity) over `epochs`; returns (stripped model, description)."""
    tfmot = import_tfmot()

    steps = steps_per_epoch(len(dataset.x_train), batch_size) * epochs
    end, freq = pruning_schedule_steps(steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                    end_step=end, frequency=freq)
    wrapped = _wrap_prunable(model, pruning_schedule=schedule)
    fit(wrapped, dataset, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, patience=None,
        seed=seed, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return stripped, (f"prune_low_magnitude PolynomialDecay 0→{sparsity:g} (end_step {end} of {steps}, "
                      f"frequency {freq}), {epochs} epochs, strip_pruning")
