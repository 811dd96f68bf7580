"""Which Keras wrote a model file, and in which format: decided from the bytes, not the suffix."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeprune.errors import ModelLoadError

H5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_FILE_FIX = "pass a model saved with model.save('model.keras') (or .h5 / a tf-keras SavedModel folder)"


@dataclass(frozen=True)
class FileKind:
    flavor: str   # "keras3" | "tf_keras"
    format: str   # "keras" | "h5" | "savedmodel"


def _flavor(version: str, path: Path) -> str:
    major = str(version).strip().split(".")[0]
    if major == "3":
        return "keras3"
    if major == "2":
        return "tf_keras"
    raise ModelLoadError(f"model file '{path}' was written by Keras {version!r}, which edgeprune does not read",
                         "re-save it with Keras 3 or tf-keras 2.x")


def file_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def detect(path: Path) -> FileKind:
    """Classify ``path``; raise :class:`ModelLoadError` (one line, with a fix) for anything else."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file '{path}' does not exist", "check the path")
    if path.is_dir():
        return _detect_dir(path)
    size = path.stat().st_size
    if size == 0:
        raise ModelLoadError(f"model file '{path}' is empty (0 bytes)", KERAS_FILE_FIX)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        return _detect_keras_zip(path)
    if head == H5_MAGIC:
        return _detect_h5(path)
    raise ModelLoadError(f"model file '{path}' is not a Keras model (neither a .keras zip nor HDF5)",
                         KERAS_FILE_FIX)


def _detect_dir(path: Path) -> FileKind:
    if not (path / "saved_model.pb").is_file():
        raise ModelLoadError(f"folder '{path}' is not a SavedModel (no saved_model.pb)", KERAS_FILE_FIX)
    if (path / "keras_metadata.pb").is_file():
        return FileKind("tf_keras", "savedmodel")
    raise ModelLoadError(
        f"SavedModel '{path}' has no Keras graph (e.g. written by Keras 3 model.export()); "
        "pruning needs the Keras layers, not the exported TF graph",
        "in Keras 3 run model.save('model.keras') on the original model and pass that file")


def _detect_keras_zip(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "metadata.json" not in names or "config.json" not in names:
                raise ModelLoadError(f"'{path}' is a zip file but not a Keras model "
                                     "(no metadata.json/config.json inside)", KERAS_FILE_FIX)
            meta = json.loads(z.read("metadata.json"))
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged zip raises anything from zipfile/zlib/struct/json
        raise ModelLoadError(f"model file '{path}' is truncated or corrupt ({type(e).__name__}: "
                             f"{str(e)[:120]})", "save or copy the model file again") from None
    return FileKind(_flavor(meta.get("keras_version", "?"), path), "keras")


def _detect_h5(path: Path) -> FileKind:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError, RuntimeError on damage
        raise ModelLoadError(f"model file '{path}' is a truncated or corrupt HDF5 file ({str(e)[:120]})",
                             "save or copy the model file again") from None
    if "model_config" not in attrs:
        raise ModelLoadError(f"HDF5 file '{path}' holds no model config (a weights-only file?)",
                             "save the whole model with model.save(...), not save_weights(...)")
    version = attrs.get("keras_version", "2")
    if isinstance(version, bytes):
        version = version.decode(errors="replace")
    return FileKind(_flavor(version, path), "h5")


def saved_config(path: Path, kind: FileKind) -> dict | None:
    """The model config stored in the file (used to name custom classes in error messages)."""
    try:
        if kind.format == "keras":
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        if kind.format == "h5":
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs["model_config"]
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # noqa: BLE001 - only used to improve a message
        return None
    return None
