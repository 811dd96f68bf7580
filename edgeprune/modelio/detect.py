"""Which Keras wrote a model file, and in which format: decided from the bytes, not the suffix."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py

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


# Run in a child process: a damaged HDF5 global heap can make libhdf5 loop forever inside one C call
# (seen with single bit flips), which no Python signal interrupts.  The child reads every attribute of
# every group and dataset (where model configs, layer names and weight names live) and prints the
# top-level ones the loader needs.
_H5_WALK = r"""
import json, sys
import h5py
top = {}
with h5py.File(sys.argv[1], "r") as f:
    def visit(name, obj):
        for key in obj.attrs:
            obj.attrs[key]
    f.visititems(visit)
    for key in ("model_config", "keras_version"):
        if key in f.attrs:
            v = f.attrs[key]
            top[key] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
print(json.dumps({"model_config": "model_config" in top, "keras_version": top.get("keras_version", "2")}))
"""
H5_READ_TIMEOUT_S = 20


def _read_h5_attrs(path: Path) -> dict:
    """``{"model_config": bool, "keras_version": str}`` of an HDF5 model file, read in a child process
    with a time limit; a ModelLoadError when the file is damaged or reading it does not finish."""
    corrupt = f"model file '{path}' is a truncated or corrupt HDF5 file"
    try:
        out = subprocess.run([sys.executable, "-c", _H5_WALK, str(path)], capture_output=True, text=True,
                             timeout=H5_READ_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(f"{corrupt} (reading its attributes did not finish in {H5_READ_TIMEOUT_S} s)",
                             "save or copy the model file again") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise ModelLoadError(f"{corrupt} ({last[:120]})", "save or copy the model file again")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _detect_h5(path: Path) -> FileKind:
    attrs = _read_h5_attrs(path)
    if not attrs["model_config"]:
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
            with h5py.File(path, "r") as f:
                raw = f.attrs["model_config"]
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # noqa: BLE001 - only used to improve a message
        return None
    return None
