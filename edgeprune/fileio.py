"""Writing files the one way edgeprune does: atomically (a reader never sees half a file), JSON with
numpy scalars and arrays, paths as strings."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_permissions(path) -> None:
    """chmod `path` (a folder: everything in it) to what the umask gives any new file (0666/0777 less the umask);
    :mod:`tempfile` makes its files private (0600, folders 0700)."""
    path = Path(path)
    mask = current_umask()
    if path.is_dir():
        for root, _, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for f in files:
                os.chmod(os.path.join(root, f), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds and wrote it.
    The file gets the umask's permissions, like any tool's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            umask_permissions(tmp)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path, suffix: str | None = None):
    """:func:`atomic_path` keeping the target's suffix (converters look at it), refusing a writer that wrote
    nothing: a failed export or save must leave no partial, or empty, file at the target."""
    path = Path(path)
    with atomic_path(path, suffix=suffix if suffix is not None else path.suffix) as tmp:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise EdgepruneError(f"export wrote nothing to {path}", "see the converter messages above")


def write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def jsonable(o):
    """``json.dumps(default=...)`` for numpy scalars and arrays (without importing numpy) and for paths."""
    if isinstance(o, Path):
        return str(o)
    if type(o).__module__ == "numpy" and hasattr(o, "tolist"):
        return o.tolist()  # a numpy scalar's tolist() is the Python scalar
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def dumps(obj, indent: int | None = 1) -> str:
    return json.dumps(obj, indent=indent, default=jsonable)


def write_json(path, obj, indent: int | None = 1) -> Path:
    """Write `obj` as JSON to `path` atomically; returns the path."""
    return write_text(path, dumps(obj, indent) + "\n")
