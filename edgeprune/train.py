"""Training and fine-tuning loops shared by the recipe steps (baseline, fine-tune, QAT).

Models end in a softmax, so distillation recovers logits as log-probabilities: softening
``log p / T`` gives the same distribution as softening the pre-softmax logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.keras import keras


@dataclass
class FitResult:
    epochs_run: int
    history: dict
    val_accuracy: float


def compile_for_training(model, learning_rate: float):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


class Distiller(keras.Model):
    """Wraps a student so `fit` minimises α·T²·KL(teacher‖student at temperature T) + (1-α)·CE."""

    def __init__(self, student, teacher, temperature: float, alpha: float):
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.ce = keras.losses.SparseCategoricalCrossentropy()
        self.kl = keras.losses.KLDivergence()
        self.acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def _soft(self, probs):
        import tensorflow as tf

        return tf.nn.softmax(tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0)) / self.temperature)

    def call(self, x, training=False):
        return self.student(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.acc]

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        teacher_probs = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_probs = self.student(x, training=True)
            hard = self.ce(y, student_probs)
            soft = self.kl(self._soft(teacher_probs), self._soft(student_probs)) * self.temperature**2
            loss = self.alpha * soft + (1.0 - self.alpha) * hard
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.loss_tracker.update_state(loss)
        self.acc.update_state(y, student_probs)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        probs = self.student(x, training=False)
        self.loss_tracker.update_state(self.ce(y, probs))
        self.acc.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics}


def fit(model, dataset, *, epochs: int, learning_rate: float = 1e-3, batch_size: int = 128,
        teacher=None, temperature: float = 4.0, alpha: float = 0.5, patience: int | None = 3,
        max_train_samples: int | None = None, seed: int = 0, verbose: int = 0, callbacks=(),
        lr_schedule: str = "constant") -> FitResult:
    """Train `model` in place on the dataset's train split; early-stop on the validation split.

    ``lr_schedule="cosine"`` decays the learning rate to zero over all `epochs` (a run that stops
    early has not reached the end of the decay).
    """
    keras.utils.set_random_seed(seed)
    x, y = dataset.x_train, dataset.y_train
    if max_train_samples:
        x, y = x[:max_train_samples], y[:max_train_samples]
    learning_rate = learning_rate_schedule(learning_rate, lr_schedule, epochs * -(-len(x) // batch_size))
    trainer = model
    if teacher is not None:
        trainer = Distiller(model, teacher, temperature, alpha)
        trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
    else:
        compile_for_training(model, learning_rate)
    cbs = list(callbacks)
    if patience and len(dataset.x_val):
        cbs.append(_BestWeights(model, patience))
    hist = trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, shuffle=True,
                       validation_data=(dataset.x_val, dataset.y_val) if len(dataset.x_val) else None,
                       callbacks=cbs)
    val_acc = evaluate(model, dataset.x_val, dataset.y_val) if len(dataset.x_val) else float("nan")
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return FitResult(epochs_run=len(hist.epoch), history=history, val_accuracy=val_acc)


def learning_rate_schedule(learning_rate: float, kind: str, total_steps: int):
    """A float for ``constant``; for ``cosine`` a Keras schedule reaching zero after `total_steps` batches."""
    if kind == "constant":
        return learning_rate
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps))
    raise ValueError(f"unknown learning-rate schedule '{kind}'")


class _BestWeights(keras.callbacks.Callback):
    """Early stopping on val_accuracy that restores the *student's* best weights (works for Distiller)."""

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
