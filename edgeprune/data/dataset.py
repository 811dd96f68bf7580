"""The Dataset container and its split logic (the loaders and the name registry: :mod:`.sources`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from edgeprune.errors import EdgepruneError


@dataclass
class Dataset:
    """Images as float32, NHWC; labels as int64 class indices.

    8-bit (uint8) images are scaled as ``scaling`` says (:data:`SCALINGS`; by default pixel / 255, in
    [0, 1]); float images are used as stored (``scaling`` None).

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
    scaling: str | None = None   # how 8-bit pixels became the inputs (a SCALINGS key); None: not 8-bit pixels

    @property
    def normalization(self) -> tuple[float, float] | None:
        """(mean, std) with inputs = (pixel - mean) / std, for 8-bit pixels; None for float data."""
        return SCALINGS[self.scaling] if self.scaling else None

    @property
    def pixel_scale(self) -> float | None:
        """The std of :attr:`normalization` (255 for the default scaling); None for float data."""
        return self.normalization[1] if self.scaling else None

    def describe_scaling(self) -> str:
        """One phrase for logs and reports, e.g. ``uint8 pixels / 255 → [0, 1] (scaling: unit)``."""
        if not self.scaling:
            return "float inputs used as stored (no scaling)"
        return f"uint8 pixels {SCALING_FORMULAS[self.scaling]} (scaling: {self.scaling})"

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
            class_names=self.class_names, source=self.source, scaling=self.scaling,
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


def make_dataset(name, x_train, y_train, x_test, y_test, *, val_fraction, seed, class_names=(), source="",
                 scaling: str | None = None):
    """A Dataset from train/test arrays; uint8 images are scaled by `scaling` (default ``unit``: pixel / 255)."""
    scaling = resolve_scaling(name, np.asarray(x_train).dtype, scaling)
    x_train = _as_images(x_train, scaling)
    x_test = _as_images(x_test, scaling)
    xt, yt, xv, yv = split_train_val(x_train, np.asarray(y_train, np.int64), val_fraction, seed)
    return Dataset(name, xt, yt, xv, yv, x_test, np.asarray(y_test, np.int64), list(class_names), source, scaling)


# How 8-bit pixels become float32 inputs: name -> (mean, std), input = (pixel - mean) / std (the mobile metadata's
# NormalizationOptions).  Float arrays are never rescaled, whatever the scaling.
SCALINGS = {
    "unit": (0.0, 255.0),          # [0, 1]: the default
    "raw": (0.0, 1.0),             # 0..255 as stored: models that rescale inside (Keras MobileNetV3, EfficientNet)
    "symmetric": (127.5, 127.5),   # [-1, 1]: MobileNetV2-style
}
SCALING_FORMULAS = {"unit": "/ 255 → [0, 1]", "raw": "as stored, 0..255", "symmetric": "/ 127.5 − 1 → [−1, 1]"}
DEFAULT_SCALING = "unit"
PIXEL_SCALE = SCALINGS[DEFAULT_SCALING][1]  # the default: 8-bit images become float32 pixel / 255 (metadata std 255)


def check_scaling(scaling: str | None) -> None:
    if scaling is not None and scaling not in SCALINGS:
        raise EdgepruneError(f"unknown input scaling '{scaling}' (known: {', '.join(SCALINGS)})",
                             "unit: pixel/255 → [0, 1] (default); raw: 0..255 as stored; symmetric: pixel/127.5 − 1")


def resolve_scaling(name: str, dtype, scaling: str | None) -> str | None:
    """The scaling a dataset of `dtype` images gets: `scaling` (default unit) for uint8, None (as stored) for
    float or other integer data; asking to rescale such data is refused rather than silently ignored."""
    check_scaling(scaling)
    if np.dtype(dtype) == np.uint8:
        return scaling or DEFAULT_SCALING
    if scaling not in (None, "raw"):
        raise EdgepruneError(f"dataset {name} holds {np.dtype(dtype)} inputs, which are used as stored; scaling "
                             f"'{scaling}' applies to 8-bit (uint8) pixels only",
                             "leave scaling out (or use raw), or save the images as uint8")
    return None


def _as_images(x: np.ndarray, scaling: str | None = DEFAULT_SCALING) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        mean, std = SCALINGS[scaling or DEFAULT_SCALING]
        x = (x.astype(np.float32) - np.float32(mean)) / np.float32(std)
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    return x
