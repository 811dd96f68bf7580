"""Write export files atomically: a failed export must leave no (partial) file at the target."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError


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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
