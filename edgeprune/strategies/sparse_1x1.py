"""Unstructured magnitude pruning of every 1×1 conv kernel during fine-tuning, for XNNPACK's sparse path.

XNNPACK runs a float model's 1×1 convs as sparse matrix products when more than 2/3 of their weights
are zero (and the file stores them sparse; see :mod:`edgeprune.export.sparse_1x1` for every condition).
:class:`Sparse1x1` is a Keras callback for :func:`edgeprune.train.fit`: after each training batch it zeroes
the smallest-magnitude weights of each 1×1 ``Conv2D`` kernel (per layer, unstructured), the zeroed fraction
following the polynomial schedule of Zhu & Gupta (2017), s(t) = s_f · (1 − (1 − t/T)³), from 0 to the
target over the first `ramp` of the training batches; the mask then stays fixed to the end (the weights it
zeroes are zeroed again after every batch, whatever the optimizer does to them).  No tfmot: the kernels are
plain variables of the tf-keras model the engine trains.
"""
from __future__ import annotations

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras


def pointwise_convs(model) -> list:
    """Every 1×1 ``Conv2D`` of `model` (nested models included), depthwise and grouped convs excluded."""
    found = []

    def walk(m):
        for layer in m.layers:
            if hasattr(layer, "layers"):
                walk(layer)
            elif (isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D)
                  and tuple(layer.kernel_size) == (1, 1) and getattr(layer, "groups", 1) == 1):
                found.append(layer)

    walk(model)
    return found


def magnitude_mask(kernel: np.ndarray, fraction: float) -> np.ndarray:
    """1.0 where a weight is kept, 0.0 for the ``ceil(fraction · size)`` smallest |w| (ties in a stable order)."""
    flat = np.abs(np.asarray(kernel)).reshape(-1)
    n_zero = int(np.ceil(fraction * flat.size - 1e-9))
    mask = np.ones(flat.size, dtype=np.float32)
    if n_zero > 0:
        mask[np.argsort(flat, kind="stable")[:n_zero]] = 0.0
    return mask.reshape(np.shape(kernel))


def zero_fraction(model) -> float:
    """Zeros over weights of all of `model`'s 1×1 conv kernels together (0.0 when it has none)."""
    layers = pointwise_convs(model)
    total = sum(int(np.prod(l.kernel.shape)) for l in layers)
    zeros = sum(int(np.sum(l.kernel.numpy() == 0)) for l in layers)
    return zeros / total if total else 0.0


class Sparse1x1(keras.callbacks.Callback):
    """Gradual magnitude pruning of the 1×1 conv kernels of `student` to `target` zeros (per layer).

    `total_steps`: training batches of the whole fit (default: read from the fit's params at train begin);
    the target is reached after ``ramp · total_steps`` batches, and the mask is recomputed every
    `update_every` batches until then (default: about 50 updates over the ramp).
    """

    def __init__(self, student, target: float, *, total_steps: int | None = None, ramp: float = 0.75,
                 update_every: int | None = None):
        super().__init__()
        if not 0.0 < target < 1.0:
            raise EdgepruneError(f"sparse_1x1 target {target} is not a fraction in (0, 1)", "use e.g. 0.8")
        self.student, self.target, self.ramp = student, float(target), float(ramp)
        self.layers = pointwise_convs(student)
        if not self.layers:
            raise EdgepruneError(f"sparse_1x1: model '{student.name}' has no 1×1 Conv2D layer",
                                 "leave sparse_1x1 out for this model")
        self.total_steps, self.update_every = total_steps, update_every
        self.step = 0
        self.masks: list[np.ndarray | None] = [None] * len(self.layers)
        self.fraction = 0.0

    # ---- the schedule
    def _ramp_steps(self) -> int:
        return max(1, int(round(self.ramp * (self.total_steps or 1))))

    def scheduled(self, step: int) -> float:
        """The zero fraction after `step` batches: cubic from 0 to the target, reached at the ramp's end."""
        t = min(1.0, step / self._ramp_steps())
        return self.target * (1.0 - (1.0 - t) ** 3)

    # ---- keras hooks
    def on_train_begin(self, logs=None):
        if self.total_steps is None:
            params = getattr(self, "params", None) or {}
            steps, epochs = params.get("steps"), params.get("epochs")
            self.total_steps = int(steps * epochs) if steps and epochs else 1
        if self.update_every is None:
            self.update_every = max(1, self._ramp_steps() // 50)

    def on_train_batch_end(self, batch, logs=None):
        if self.total_steps is None or self.update_every is None:
            self.on_train_begin()
        self.step += 1
        ramping = self.fraction < self.target
        if ramping and (self.step % self.update_every == 0 or self.step >= self._ramp_steps()):
            self.update(self.scheduled(self.step))
        self.apply()

    def on_train_end(self, logs=None):
        self.finish()

    # ---- masks
    def update(self, fraction: float) -> None:
        """New masks at `fraction` zeros per layer, from the current magnitudes (zeroed weights stay zero)."""
        self.fraction = float(fraction)
        for i, layer in enumerate(self.layers):
            kernel = layer.kernel.numpy()
            if self.masks[i] is not None:
                kernel = kernel * self.masks[i]
            self.masks[i] = magnitude_mask(kernel, self.fraction)

    def apply(self) -> None:
        for layer, mask in zip(self.layers, self.masks):
            if mask is not None:
                layer.kernel.assign(layer.kernel * mask)

    def finish(self) -> None:
        """The target reached and applied, whatever the fit did (an early stop, restored best weights)."""
        # from the kernels as they are now: restored weights may hold values an earlier mask zeroed
        self.fraction = self.target
        self.masks = [magnitude_mask(l.kernel.numpy(), self.target) for l in self.layers]
        self.apply()

    def summary(self) -> dict:
        return {"target": self.target, "layers": len(self.layers), "zero_fraction": round(zero_fraction(self.student), 4)}
