"""Files trials read and write: models as tf-keras ``.keras`` files, data as ``.npz``, results as JSON.

Trials get paths, never live objects (so they run the same in a Ray worker); in one process the
loaded files are cached by (path, modification time), so many trials on one model load it once.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgeprune import fileio
from edgeprune.data.dataset import Dataset
from edgeprune.modelio import load_model


def save_model_file(model, path) -> Path:
    """tf-keras ``.keras`` file, written under a temporary name and renamed into place."""
    with fileio.atomic_path(path, suffix=".keras") as tmp:
        model.save(str(tmp))
    return Path(path)


@functools.lru_cache(maxsize=8)
def _load_model_cached(path: str, mtime_ns: int):
    return load_model(path)


def load_model_file(path):
    """The model in `path` (cached; callers must not train it in place — prune/clone first)."""
    path = Path(path).resolve()
    return _load_model_cached(str(path), path.stat().st_mtime_ns)


def fresh_model_file(path):
    """An uncached copy of the model in `path`, safe to train in place."""
    return load_model(path)


def save_arrays(dataset, path, *, max_train: int | None = None, max_val: int | None = None) -> Path:
    """The train/validation splits a trial needs (never the test split) as one ``.npz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, name=np.array(dataset.name), x_train=dataset.x_train[:max_train], y_train=dataset.y_train[:max_train],
             x_val=dataset.x_val[:max_val], y_val=dataset.y_val[:max_val])
    return path


@functools.lru_cache(maxsize=4)
def _load_arrays_cached(path: str, mtime_ns: int):
    with np.load(path) as d:
        x_val = d["x_val"]
        empty_x = np.zeros((0, *x_val.shape[1:]), np.float32)
        return Dataset(name=str(d["name"]), x_train=d["x_train"], y_train=d["y_train"], x_val=x_val,
                       y_val=d["y_val"], x_test=empty_x, y_test=np.zeros(0, np.int64), source=path)


def load_arrays(path):
    """A Dataset with the train/val splits of `path` and an empty test split (cached)."""
    path = Path(path).resolve()
    return _load_arrays_cached(str(path), path.stat().st_mtime_ns)


def write_json(path, obj) -> dict:
    fileio.write_json(path, obj)
    return obj
