"""The one training loop: fine-tuning, distillation, QAT and sparsity training all go through `fit`.

:class:`Trainer` wraps the model and minimises a weighted sum of loss terms
(:mod:`edgeprune.losses`): the hard-label cross-entropy (``from_logits`` follows the model's output
kind), optionally distillation from a teacher, and any extra term a strategy brings (the sparsity
penalty).  Validation loss is the hard-label loss alone.  The wrapped model gets no compiled loss,
so a saved model carries nothing of the training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras
from edgeprune.losses import OUTPUT_KINDS, DistillationLoss, HardLabelLoss, output_kind


@dataclass
class FitResult:
    epochs_run: int
    history: dict
    val_accuracy: float
    output_kind: str


class Trainer(keras.Model):
    """Wraps `student` so `fit` minimises Σ weight · term(x, y, student(x)) over `terms`.

    A term with a ``name`` is also reported (unweighted) in the history under that name.
    """

    def __init__(self, student, terms, val_loss):
        super().__init__()
        self.student = student
        self.terms = [(float(w), t) for w, t in terms]
        self.val_loss = val_loss
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = {t.name: keras.metrics.Mean(name=t.name) for _, t in self.terms if t.name}
        self.acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, x, training=False):
        return self.student(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.term_trackers.values(), self.acc]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            outputs = self.student(x, training=True)
            values = [(w, t, t(x, y, outputs)) for w, t in self.terms]
            loss = tf.add_n([w * v for w, _, v in values])
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.loss_tracker.update_state(loss)
        for _, t, v in values:
            if t.name:
                self.term_trackers[t.name].update_state(v)
        self.acc.update_state(y, outputs)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        outputs = self.student(x, training=False)
        self.loss_tracker.update_state(self.val_loss(x, y, outputs))
        self.acc.update_state(y, outputs)
        return {m.name: m.result() for m in (self.loss_tracker, self.acc)}


def fit(model, dataset, *, epochs: int, learning_rate: float = 1e-3, batch_size: int = 128,
        teacher=None, temperature: float = 4.0, alpha: float = 0.5, extra_terms=(),
        patience: int | None = 3, max_train_samples: int | None = None, seed: int = 0,
        output: str | None = None, callbacks=(), lr_schedule: str = "constant") -> FitResult:
    """Train `model` in place on the dataset's train split; early-stop on the validation split.

    Loss: (1-α)·CE + α·distillation with a `teacher`, plain CE without one, plus each
    ``(weight, term)`` of `extra_terms`.  `output` overrides the detected output kind
    (``probabilities`` or ``logits``).  `callbacks` are Keras callbacks; Keras prints nothing.
    ``lr_schedule="cosine"`` decays the learning rate to zero over all `epochs` (a run that stops
    early has not reached the end of the decay).
    """
    kind = output or output_kind(model)
    if kind not in OUTPUT_KINDS:
        raise EdgepruneError(f"unknown model output kind '{kind}'", f"use one of {', '.join(OUTPUT_KINDS)}")
    keras.utils.set_random_seed(seed)
    x, y = dataset.x_train, dataset.y_train
    if max_train_samples:
        x, y = x[:max_train_samples], y[:max_train_samples]
    learning_rate = learning_rate_schedule(learning_rate, lr_schedule, epochs * -(-len(x) // batch_size))
    hard = HardLabelLoss(kind)
    if teacher is not None:
        terms = [(1.0 - alpha, hard), (alpha, DistillationLoss(teacher, kind, temperature))]
    else:
        terms = [(1.0, hard)]
    trainer = Trainer(model, [*terms, *extra_terms], val_loss=hard)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
    cbs = list(callbacks)
    if patience and len(dataset.x_val):
        cbs.append(_BestWeights(model, patience))
    hist = trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                       validation_data=(dataset.x_val, dataset.y_val) if len(dataset.x_val) else None,
                       callbacks=cbs)
    val_acc = evaluate(model, dataset.x_val, dataset.y_val) if len(dataset.x_val) else float("nan")
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return FitResult(epochs_run=len(hist.epoch), history=history, val_accuracy=val_acc, output_kind=kind)


def learning_rate_schedule(learning_rate: float, kind: str, total_steps: int):
    """A float for ``constant``; for ``cosine`` a Keras schedule reaching zero after `total_steps` batches."""
    if kind == "constant":
        return learning_rate
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps))
    raise ValueError(f"unknown learning-rate schedule '{kind}'")


class _BestWeights(keras.callbacks.Callback):
    """Early stopping on val_accuracy that restores the wrapped model's best weights."""

    def __init__(self, student, patience: int):
        super().__init__()
        self.student, self.patience = student, patience
        self.best, self.best_weights, self.wait = -1.0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        acc = float((logs or {}).get("val_accuracy", -1.0))
        if acc > self.best:
            self.best, self.best_weights, self.wait = acc, self.student.get_weights(), 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.student.set_weights(self.best_weights)


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    return model.predict(x, batch_size=batch_size, verbose=0)


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy of a Keras model on (x, y)."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(np.argmax(predict(model, x, batch_size), axis=-1) == y))
