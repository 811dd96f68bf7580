"""Write export files atomically: a failed export must leave no (partial, or empty) file at the target."""
from __future__ import annotations

import contextlib
from pathlib import Path

from edgeprune import fileio
from edgeprune.errors import EdgepruneError


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """:func:`edgeprune.fileio.atomic_path` (the umask's permissions), keeping the target's suffix for the
    converters, and refusing an export that wrote nothing."""
    path = Path(path)
    with fileio.atomic_path(path, suffix=suffix if suffix is not None else path.suffix) as tmp:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise EdgepruneError(f"export wrote nothing to {path}", "see the converter messages above")
