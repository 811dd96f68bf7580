"""Content-hash keys for step caching: a step re-runs only when something it depends on changed."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgeprune import __version__, zoo
from edgeprune.data.sources import cache_dir


def digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:20]


def file_digest(path: Path) -> str:
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:20]


def source_digest(model_source: str) -> str:
    if model_source in zoo.MODELS:
        return f"zoo:{model_source}"
    return f"file:{file_digest(Path(model_source))}"


def root_key(ctx) -> str:
    r = ctx.recipe
    return digest(__version__, source_digest(ctx.model_source), ctx.dataset.fingerprint(),
                  r.dataset.model_dump(), r.seed)


def step_key(previous: str, kind: str, spec, extra=None) -> str:
    return digest(previous, kind, spec.model_dump(by_alias=True), extra)


def trained_model_cache(ctx, spec, model) -> Path:
    """Where a baseline trained with these exact inputs is kept across runs."""
    key = digest(__version__, source_digest(ctx.model_source), model.to_json(), ctx.dataset.fingerprint(),
                 spec.model_dump(exclude_defaults=True), ctx.recipe.dataset.model_dump(exclude_defaults=True),
                 ctx.recipe.seed, ctx.model_flavor)
    return cache_dir() / "trained" / f"{key}.keras"
