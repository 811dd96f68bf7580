"""Write files atomically: a failed write must leave no (partial) file at the target.

Temporary files from :mod:`tempfile` are private (0600, folders 0700); :func:`umask_permissions` gives a
finished file the permissions any other tool's file gets (0666/0777 less the umask) before it is renamed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_permissions(path) -> None:
    """chmod `path` (and, for a folder, everything in it) to the umask's default permissions."""
    path = Path(path)
    mask = current_umask()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for f in files:
                os.chmod(os.path.join(root, f), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise EdgepruneError(f"export wrote nothing to {path}", "see the converter messages above")
        umask_permissions(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
