"""A run directory's recipe.lock.yaml: the recipe as resolved (every default written out), and
whether a run directory holds the same recipe as a file.  Light (no TensorFlow): the bench decides
whether to reuse a finished run before any trial loads TensorFlow."""
from __future__ import annotations

from pathlib import Path

import yaml

from edgeprune.recipe.schema import load_recipe

LOCK_FILE = "recipe.lock.yaml"


def resolved_recipe(recipe) -> dict:
    data = recipe.model_dump(exclude={"steps"})
    data["steps"] = [{kind: spec.model_dump(by_alias=True)} for kind, spec in recipe.step_specs()]
    return data


def same_recipe(previous, current) -> bool:
    """Whether two resolved recipes (``resolved_recipe``) are the same run: the same steps in the same
    order with the same settings. A setting only one side has is one that one edgeprune version resolves
    and the other does not know (every default is written out), not a change the user made: it is
    skipped, so an upgrade does not turn a run directory into "a different recipe"."""
    if not isinstance(previous, dict) or not isinstance(current, dict):
        return previous == current
    steps_before, steps_now = previous.get("steps") or [], current.get("steps") or []
    if [next(iter(s)) for s in steps_before] != [next(iter(s)) for s in steps_now]:
        return False
    rest = lambda d: {k: v for k, v in d.items() if k != "steps"}  # noqa: E731
    return _same_settings(rest(previous), rest(current)) and all(
        _same_settings(next(iter(a.values())), next(iter(b.values()))) for a, b in zip(steps_before, steps_now))


def _same_settings(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same_settings(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def holds_other_recipe(run_dir, recipe_path) -> bool:
    """Whether `run_dir` holds a run (its lock file) of a recipe other than the file at `recipe_path`."""
    lock = Path(run_dir) / LOCK_FILE
    if not lock.exists():
        return False
    previous = (yaml.safe_load(lock.read_text()) or {}).get("recipe")
    return not same_recipe(previous, resolved_recipe(load_recipe(recipe_path)))
