"""The recipe format: pydantic models, strict (unknown keys are errors), with YAML line numbers.

A recipe names the model (zoo name or file), the dataset, and an ordered list of steps, each a
one-key mapping ``- <kind>: {settings}``.  ``load_recipe`` turns any validation failure into one
line naming the key path and its line in the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from edgeprune.data.sources import dataset_names
from edgeprune.errors import RecipeError
from edgeprune.recipe.plan_check import plan_problems
from edgeprune.recipe.steps import STEPS, Settings


class DatasetSpec(Settings):
    name: str = "fashion_mnist"
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    max_train_samples: Optional[int] = Field(None, gt=0)
    test_samples: Optional[int] = Field(None, gt=0, description="limit the test split (default: all of it)")
    scaling: Optional[Literal["unit", "raw", "symmetric"]] = Field(
        None, description="how 8-bit (uint8) pixels become inputs: unit, pixel/255 in [0, 1] (the default); raw, "
                          "0..255 as stored (models that rescale inside, e.g. Keras MobileNetV3); symmetric, "
                          "pixel/127.5 - 1 in [-1, 1] (MobileNetV2-style). Float data are used as stored")


class Recipe(Settings):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    model: str = Field(description="zoo name (lenet5, resnet8, dscnn, mobilenetv2) or a model file")
    dataset: DatasetSpec = DatasetSpec()
    steps: list[dict]

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v):
        return {"name": v} if isinstance(v, str) else v  # `dataset: fashion_mnist`

    _specs: Optional[list] = PrivateAttr(None)  # the steps' settings, parsed once

    def step_specs(self) -> list[tuple[str, Settings]]:
        """(kind, settings) of each step, in order."""
        if self._specs is None:
            self._specs = [parse_step(i, s) for i, s in enumerate(self.steps)]
        return self._specs


def parse_step(index: int, raw) -> tuple[str, Settings]:
    errors = step_errors(index, raw)
    if errors:
        raise RecipeError(f"step {index + 1}: {errors[0].message}", "see recipes/quickstart.yaml for the format")
    (kind, settings), = raw.items()
    return kind, STEPS[kind].settings.model_validate(settings or {})


def step_errors(index: int, raw) -> list["_StepError"]:
    """Every problem of one step (empty when it is valid)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        return [_StepError(("steps", index), "each step is a one-key mapping like `- prune: {ratio: 0.5}`")]
    (kind, settings), = raw.items()
    if kind not in STEPS:
        return [_StepError(("steps", index, kind), f"unknown step '{kind}' (known: {', '.join(STEPS)})")]
    try:
        STEPS[kind].settings.model_validate(settings or {})
    except ValidationError as e:
        return [_StepError(("steps", index, kind, *err["loc"]), _message(err)) for err in e.errors()]
    return []


class _StepError(Exception):
    def __init__(self, loc: tuple, message: str):
        self.loc, self.message = loc, message


# ---------------------------------------------------------------------------------------------
# loading with line numbers


def _line_of(node, loc) -> int | None:
    """Walk the composed YAML node tree along a pydantic error location; return the 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _message(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return err["msg"]


def load_recipe(path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror}", "check the path") from None
    try:
        tree = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with name, model, dataset and steps", "see recipes/quickstart.yaml")
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem))  # the file name serves
    problems: list[tuple[tuple, str]] = []
    recipe = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += [(tuple(err["loc"]), _message(err)) for err in e.errors()
                     if not (err["loc"] and err["loc"][0] == "steps" and len(err["loc"]) > 1)]
    steps = data.get("steps")
    if isinstance(steps, list):
        problems += [(err.loc, err.message) for i, raw in enumerate(steps) for err in step_errors(i, raw)]
    if problems:
        raise _located(path, tree, problems)

    recipe.model = beside_recipe(path, recipe.model)
    recipe.dataset.name = beside_recipe(path, recipe.dataset.name, names=dataset_names())

    problems = plan_problems(recipe, recipe.step_specs())
    if problems:
        raise _located(path, tree, problems)
    return recipe


def beside_recipe(recipe_path, value: str, names=()) -> str:
    """A relative file or folder path in a recipe, resolved from the recipe's folder (not the current one).

    A value that looks like a path (a suffix or a folder in it) or names something beside the recipe
    becomes an absolute path; absolute paths, ``~/...`` and names (zoo models, built-in datasets) stay."""
    if value in names:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    beside = Path(recipe_path).parent / path
    if path.suffix or len(path.parts) > 1 or beside.exists():
        return os.path.abspath(beside)
    return value


def located_problems(path, problems: list[tuple[tuple, str]]) -> RecipeError:
    """Problems found after loading (they needed the model), with their lines in the recipe file."""
    return _located(path, yaml.compose(Path(path).read_text()), problems)


def _located(path, tree, problems: list[tuple[tuple, str]]) -> RecipeError:
    """All problems in one line, each as ``FILE:LINE: 'key.path': message``."""
    parts = []
    for loc, message in problems:
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        parts.append(f"{path}:{_line_of(tree, loc)}: '{key}': {message}")
    head = f"{len(problems)} problems: " if len(problems) > 1 else ""
    return RecipeError(head + "; ".join(parts), "see recipes/quickstart.yaml for the format")


def check_model_file(source: str) -> None:
    """A model named by a file name (a suffix or a folder in it) must exist; zoo names are checked by the runner.
    Needs no TensorFlow, so a typo is refused at once."""
    if not Path(source).exists() and (Path(source).suffix or "/" in source):
        raise RecipeError(f"model file '{source}' does not exist", "check the recipe's model: (or --model)")
