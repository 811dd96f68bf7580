"""read_model / load_model / save_model: the file side of carrying models between Keras versions."""
from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras as keras3
import numpy as np

from edgeprune.errors import EdgepruneError, ModelLoadError
from edgeprune.keras import keras as tf_keras
from edgeprune.modelio.detect import FileKind, detect, file_bytes, saved_config
from edgeprune.modelio.keras3_to_tfkeras import from_keras3
from edgeprune.modelio.tfkeras_to_keras3 import to_keras3

FLAVORS = ("keras3", "tf_keras")
SUFFIX_FORMATS = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", "": "savedmodel"}
_CONTAINERS = {"Functional", "Sequential", "Model"}


@dataclass
class LoadedModel:
    model: Any          # always a tf-keras model
    flavor: str         # "keras3" | "tf_keras": which Keras wrote the file
    format: str         # "keras" | "h5" | "savedmodel"
    path: Path
    file_bytes: int


def read_model(path) -> LoadedModel:
    """Load any supported model file as a tf-keras model, remembering which Keras wrote it."""
    path = Path(path)
    kind = detect(path)
    if kind.flavor == "keras3":
        model = from_keras3(_load_with(path, kind, _keras3_loader()))
    else:
        model = _load_with(path, kind, _tf_keras_loader())
    check_finite_weights(model, path)
    return LoadedModel(model=model, flavor=kind.flavor, format=kind.format, path=path,
                       file_bytes=file_bytes(path))


def load_model(path):
    """The tf-keras model in ``path`` (see :func:`read_model`)."""
    return read_model(path).model


def _keras3_loader():
    return keras3


def _tf_keras_loader():
    return tf_keras


def _load_with(path: Path, kind: FileKind, keras):
    try:
        return keras.models.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - every failure becomes one ModelLoadError line
        custom = _custom_classes(saved_config(path, kind), keras)
        if custom:
            raise ModelLoadError(
                f"model file '{path}' uses custom layer class(es) {', '.join(sorted(custom))}, "
                "which need custom_objects to load",
                "replace them with standard Keras layers and re-save the model") from None
        if "Lambda" in str(e) and "safe_mode" in str(e):
            raise ModelLoadError(f"model file '{path}' has a Lambda layer, which Keras refuses to load in safe mode "
                                 "(its Python code would run)",
                                 "replace the Lambda with standard Keras layers and re-save the model") from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        raise ModelLoadError(f"could not load model file '{path}' ({kind.flavor} {kind.format}): {first}",
                             "re-save the model with model.save() in the Keras that built it") from None


def _custom_classes(config, keras) -> set[str]:
    """Class names in a saved model config that the loading Keras does not know."""
    found: set[str] = set()

    def walk(entry):
        if isinstance(entry, dict):
            cls, module = entry.get("class_name"), entry.get("module") or ""
            if (isinstance(cls, str) and isinstance(entry.get("config"), dict) and "name" in entry["config"]
                    and cls not in _CONTAINERS and _is_custom(cls, module, keras)):
                found.add(cls)
            for v in entry.values():
                walk(v)
        elif isinstance(entry, list):
            for v in entry:
                walk(v)

    walk(config)
    return found


def _is_custom(cls: str, module: str, keras) -> bool:
    """A class from the user's own code: its module is not Keras's, or (old configs name no module) Keras has
    no such class.  Keras 3 stores dtype policies and ops with ``name`` configs too; those are Keras's own."""
    if module:
        return not module.startswith(("keras", "tf_keras"))
    return not any(hasattr(ns, cls) for ns in (keras.layers, keras, getattr(keras, "mixed_precision", None)) if ns)


def check_finite_weights(model, path) -> None:
    """Refuse NaN/Inf weights on load: pruning would rank channels by them in silence."""
    for layer in model.layers:
        for weight in layer.weights:
            values = np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                bad = int(values.size - np.isfinite(values).sum())
                raise ModelLoadError(f"model file '{path}' has {bad} NaN/Inf value(s) in layer '{layer.name}' "
                                     f"({weight.name.split('/')[-1]})",
                                     "retrain or restore the model; its outputs are not numbers")


# ---- saving --------------------------------------------------------------------------------------

def save_model(model, path, flavor: str = "keras3") -> Path:
    """Write ``model`` (tf-keras) so that Keras 3 (``flavor="keras3"``) or tf-keras loads it with no
    custom objects.  The suffix picks the format (``.keras``, ``.h5``, none: SavedModel folder,
    tf_keras only).  The file appears atomically: written under a temporary name, then renamed."""
    path = Path(path)
    if flavor not in FLAVORS:
        raise EdgepruneError(f"unknown model flavor '{flavor}'", f"use one of {', '.join(FLAVORS)}")
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EdgepruneError(f"cannot tell the model format from '{path.name}'",
                             "use a .keras or .h5 file name (or no suffix for a tf-keras SavedModel)")
    if fmt == "savedmodel" and flavor == "keras3":
        raise EdgepruneError(f"Keras 3 cannot write a loadable SavedModel folder ('{path}')",
                             "use a .keras path (or flavor='tf_keras')")
    out = _for_flavor(model, flavor)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        if flavor == "tf_keras":
            out.save(str(tmp), save_format={"keras": "keras", "h5": "h5", "savedmodel": "tf"}[fmt])
        else:
            out.save(str(tmp))
        _replace(tmp, path)
    except Exception as e:
        _remove(tmp)
        if isinstance(e, EdgepruneError):
            raise
        raise EdgepruneError(f"could not write model file '{path}': {str(e).splitlines()[0][:200]}",
                             "check the folder is writable and has free space") from e
    return path


def _for_flavor(model, flavor: str):
    is_keras3 = type(model).__module__.startswith("keras.")
    if flavor == "keras3":
        if is_keras3:
            return model
        return to_keras3(model)
    if is_keras3:
        return from_keras3(model)
    return model


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir():
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()
