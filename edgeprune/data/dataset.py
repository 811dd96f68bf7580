"""The Dataset container and its split logic (the loaders and the name registry: :mod:`.sources`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Images as float32 in [0, 1], NHWC; labels as int64 class indices.

    The test split is only ever used for reporting; fine-tuning decisions (early stopping,
    sensitivity, budget search) use the validation split, carved from the training data by seed.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    pixel_scale: float | None = None   # inputs are 8-bit pixels / pixel_scale; None: not 8-bit pixels

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)

    def fingerprint(self) -> str:
        """Content hash of all splits: part of the cache key of a trained model."""
        h = hashlib.sha256(self.name.encode())
        for arr in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def subset(self, train: int | None = None, test: int | None = None, val: int | None = None) -> "Dataset":
        """First-N slices of each split (splits are already shuffled by seed)."""
        return Dataset(
            name=self.name,
            x_train=self.x_train[:train], y_train=self.y_train[:train],
            x_val=self.x_val[:val], y_val=self.y_val[:val],
            x_test=self.x_test[:test], y_test=self.y_test[:test],
            class_names=self.class_names, source=self.source, pixel_scale=self.pixel_scale,
        )

    def calibration_samples(self, n: int = 200, seed: int = 0) -> np.ndarray:
        """Representative inputs for PTQ, drawn from the training split."""
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(self.x_train), size=min(n, len(self.x_train)), replace=False)
        return self.x_train[np.sort(idx)]


def split_train_val(x, y, val_fraction: float, seed: int):
    """Shuffle the training data by `seed` and hold out `val_fraction` of it as validation."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def make_dataset(name, x_train, y_train, x_test, y_test, *, val_fraction, seed, class_names=(), source=""):
    pixel_scale = PIXEL_SCALE if np.asarray(x_train).dtype == np.uint8 else None
    x_train = _as_images(x_train)
    x_test = _as_images(x_test)
    xt, yt, xv, yv = split_train_val(x_train, np.asarray(y_train, np.int64), val_fraction, seed)
    return Dataset(name, xt, yt, xv, yv, x_test, np.asarray(y_test, np.int64), list(class_names), source, pixel_scale)


PIXEL_SCALE = 255.0  # 8-bit images become float32 pixel / 255 (what mobile metadata calls std 255)


def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / PIXEL_SCALE
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    return x
