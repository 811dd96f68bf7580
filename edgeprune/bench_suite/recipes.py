"""The compared recipes, each from the same pre-trained dense model and with the same epoch budget.

- dense: keep training (baseline float32 and PTQ int8 come from it);
- TF-MOT's standard recipe: ``prune_low_magnitude`` + PolynomialDecay to a target sparsity,
  ``strip_pruning``, PTQ int8;
- TF-MOT 2:4: ``sparsity_m_by_n=(2, 4)`` then prune-preserving QAT;
- edgeprune: structured channel pruning (rounded channel counts), distillation fine-tune, QAT int8.
"""
from __future__ import annotations

import math

import numpy as np

from edgeprune.keras import keras


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


def _fit(model, dataset, s, epochs, *, learning_rate, callbacks=(), teacher=None):
    from edgeprune.train import fit

    return fit(model, dataset, epochs=epochs, learning_rate=learning_rate, batch_size=s.batch_size,
               patience=None, seed=s.seed, callbacks=callbacks, teacher=teacher)


def pretrain(name: str, dataset, s):
    from edgeprune import zoo

    model = zoo.build(name, input_shape=dataset.input_shape, num_classes=dataset.num_classes, seed=s.seed)
    _fit(model, dataset, s, s.epochs, learning_rate=s.learning_rate)
    return model


def dense_finetune(model, dataset, s):
    _fit(model, dataset, s, s.finetune_epochs, learning_rate=s.finetune_learning_rate)
    return model, {"recipe": f"dense training, {s.finetune_epochs} more epochs"}


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


def _prunable(layer) -> bool:
    return type(layer).__name__ in ("Conv2D", "Dense")


def _wrap_prunable(model, **prune_kwargs):
    """Clone `model` with `prune_low_magnitude` on each Conv2D/Dense layer that accepts the settings.

    Returns (wrapped_model, names_not_wrapped): 2:4 sparsity refuses kernels whose input side is
    not a multiple of 4 (e.g. a first conv on 1 input channel), so such layers stay dense.
    """
    import tensorflow_model_optimization as tfmot

    skipped = []

    def clone_fn(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if not _prunable(layer):
            return fresh
        if prune_kwargs.get("sparsity_m_by_n") and not _m_by_n_fits(layer, prune_kwargs["sparsity_m_by_n"]):
            skipped.append(layer.name)
            return fresh
        return tfmot.sparsity.keras.prune_low_magnitude(fresh, **prune_kwargs)

    wrapped = keras.models.clone_model(model, clone_function=clone_fn)
    _copy_weights(model, wrapped)
    return wrapped, skipped


def _m_by_n_fits(layer, m_by_n) -> bool:
    """tfmot groups 2:4 blocks along the kernel's input-channel axis; it must divide by n."""
    kernel_shape = layer.kernel.shape
    return int(kernel_shape[-2]) % int(m_by_n[1]) == 0


def _copy_weights(src, dst):
    """Copy weights layer by layer into a clone whose layers may be pruning wrappers."""
    for layer in dst.layers:
        inner = getattr(layer, "layer", layer)
        source = src.get_layer(inner.name)
        if source.weights:
            inner.set_weights(source.get_weights())


def tfmot_magnitude(model, dataset, s, sparsity: float):
    """TF-MOT's documented recipe: PolynomialDecay(0 → sparsity) over the fine-tune budget."""
    import tensorflow_model_optimization as tfmot

    steps = steps_per_epoch(len(dataset.x_train), s.batch_size) * s.finetune_epochs
    end, freq = pruning_schedule_steps(steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                    end_step=end, frequency=freq)
    wrapped, _ = _wrap_prunable(model, pruning_schedule=schedule)
    _fit(wrapped, dataset, s, s.finetune_epochs, learning_rate=s.finetune_learning_rate,
         callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return stripped, {"recipe": f"prune_low_magnitude PolynomialDecay 0→{sparsity:g} (end_step {end} of {steps}, "
                                f"frequency {freq}), {s.finetune_epochs} epochs, strip_pruning, PTQ int8",
                      "target_sparsity": sparsity}


def tfmot_2by4_pqat(model, dataset, s):
    """2:4 sparsity for the fine-tune epochs before QAT, then prune-preserving QAT for the rest."""
    import tensorflow_model_optimization as tfmot

    from edgeprune.quantize.qat import quantize_qat

    prune_epochs = s.finetune_epochs - s.qat_epochs
    steps = steps_per_epoch(len(dataset.x_train), s.batch_size) * prune_epochs
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=max(1, steps // 10))
    wrapped, dense_layers = _wrap_prunable(model, pruning_schedule=schedule, sparsity_m_by_n=(2, 4))
    _fit(wrapped, dataset, s, prune_epochs, learning_rate=s.finetune_learning_rate,
         callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    sparsity_before_qat = weight_sparsity(stripped)
    qat = quantize_qat(stripped, scheme="prune_preserve")
    _fit(qat, dataset, s, s.qat_epochs, learning_rate=s.finetune_learning_rate)
    return stripped, qat, {
        "recipe": f"prune_low_magnitude sparsity_m_by_n=(2, 4), {prune_epochs} epochs, strip_pruning, "
                  f"prune-preserving QAT {s.qat_epochs} epochs",
        "layers_left_dense": dense_layers, "sparsity_before_qat": sparsity_before_qat,
    }


def edgeprune_structured(model, dataset, s, ratio: float):
    """Remove whole channels (counts rounded to `round_to`), fine-tune distilling from the unpruned model, QAT int8."""
    from edgeprune.pruning import prune
    from edgeprune.quantize.qat import quantize_qat

    pruned, plan = prune(model, ratio, criterion="l1", round_to=s.round_to, seed=s.seed)
    finetune = s.finetune_epochs - s.qat_epochs
    _fit(pruned, dataset, s, finetune, learning_rate=s.finetune_learning_rate, teacher=model)
    qat = quantize_qat(pruned)
    _fit(qat, dataset, s, s.qat_epochs, learning_rate=s.finetune_learning_rate)
    return pruned, qat, {"recipe": f"edgeprune.prune ratio {ratio:g} (l1, round_to {s.round_to}), fine-tune "
                                   f"{finetune} epochs distilling from the unpruned model, QAT int8 {s.qat_epochs} epochs", "ratio": ratio}
