"""Does a dataset fit a model?  Checked before training, pruning or export touch them, so a mismatch is
one line naming both sides instead of a TensorFlow traceback minutes later."""
from __future__ import annotations

import numpy as np

from edgeprune.errors import DataMismatchError

FIX_DATA = "use data of the model's input shape and classes (or the model trained on this data)"


def _shape(dims) -> str:
    return "(" + ", ".join("any" if d is None else str(d) for d in dims) + ")"


def check_arrays(name: str, x: np.ndarray, y: np.ndarray, split: str) -> None:
    """Images and labels of one split are arrays of numbers that belong together."""
    if x.dtype.kind not in "biuf":
        raise DataMismatchError(f"dataset {name}: x_{split} holds {x.dtype} values, not numbers",
                                "save images as uint8 or float arrays")
    if x.ndim < 2 or x.ndim > 4:
        raise DataMismatchError(f"dataset {name}: x_{split} has shape {x.shape}; expected (N, H, W[, C]) or (N, features)",
                                "save one sample per row")
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise DataMismatchError(f"dataset {name}: y_{split} has shape {y.shape} ({y.dtype}); expected one class index per sample",
                                "save labels as integer class indices, not one-hot rows")
    if len(x) != len(y):
        raise DataMismatchError(f"dataset {name}: x_{split} has {len(x)} samples but y_{split} has {len(y)}",
                                "save as many labels as images")
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or not np.all(y == np.round(y))):
        raise DataMismatchError(f"dataset {name}: y_{split} holds non-integer labels", "save integer class indices")
    if len(y) and y.min() < 0:
        raise DataMismatchError(f"dataset {name}: y_{split} has a negative label ({y.min()})", "labels are class indices 0..N-1")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataMismatchError(f"dataset {name}: x_{split} holds NaN/Inf values", "clean the data")


def require_single_io(model, what: str, *, single_output: bool = True) -> None:
    """Refuse, in one line naming the limit, what only works with one input (and one output) tensor."""
    n_in, n_out = len(model.inputs), len(model.outputs)
    if single_output and (n_in != 1 or n_out != 1):
        raise DataMismatchError(f"{what} handles models with one input and one output; this one has "
                                f"{n_in} input(s) and {n_out} output(s)",
                                "prune, export and benchmark a single-input, single-output model (or omit this option)")
    if n_in != 1:
        raise DataMismatchError(f"{what} handles models with one input; this one has {n_in} input(s)",
                                "use a single-input model (or omit this option)")


def check_inputs(model, x: np.ndarray, source: str, what: str = "the model", *, single_output: bool = True) -> None:
    """Samples `x` fit the model's (single) input."""
    require_single_io(model, what, single_output=single_output)
    want = tuple(model.inputs[0].shape[1:])
    got = tuple(x.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        raise DataMismatchError(f"{source} has inputs of shape {_shape(got)}, the model expects {_shape(want)}", FIX_DATA)
    dtype = str(getattr(model.inputs[0].dtype, "name", model.inputs[0].dtype))
    if "int" in dtype and x.dtype.kind == "f":
        raise DataMismatchError(f"{source} holds float inputs, the model expects {dtype}", FIX_DATA)


def check_fits(model, dataset, what: str = "the model") -> None:
    """The dataset's images fit the model's input, and its labels are classes the model's output has."""
    check_inputs(model, dataset.x_train, f"dataset {dataset.name}", what)
    classes = model.outputs[0].shape[-1]
    labels = np.concatenate([np.asarray(dataset.y_train), np.asarray(dataset.y_val), np.asarray(dataset.y_test)])
    if classes is None or not labels.size:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if classes == 1 and hi <= 1:
        raise DataMismatchError(f"the model has one output unit, dataset {dataset.name} has 2 classes (labels 0..1)",
                                "end the model in Dense(2) (softmax or logits); edgeprune trains with class indices")
    if lo < 0 or hi >= classes:
        raise DataMismatchError(f"dataset {dataset.name} has labels {lo}..{hi}, the model's output has {classes} classes",
                                FIX_DATA)
