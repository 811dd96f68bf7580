"""What can be known about a recipe before any work: criteria, devices, datasets, step order, stages.

`plan_problems` returns every problem at once as (key path, message); :func:`load_recipe` reports
them with their lines. It needs no TensorFlow, so a misspelt device or a benchmark placed before the
export is refused in a fraction of a second, before the run directory exists and before anything
trains. Layer names (``protect``, ``keep_float``, ``overrides``) need the model: the steps check them
when they read it, before they change anything.
"""
from __future__ import annotations

import re
from pathlib import Path

from edgeprune.criterion_names import parse_criterion
from edgeprune.data.sources import LOADERS
from edgeprune.errors import EdgepruneError
from edgeprune.harness.profiles import load_profiles
from edgeprune.recipe.steps import EXPORTS, MODEL_STAGES, STEPS


def plan_problems(recipe, specs) -> list[tuple[tuple, str]]:
    """Every problem of the plan that needs neither TensorFlow nor the model, from what each step
    declares it reads and writes (edgeprune.recipe.steps)."""
    problems = _dataset_problems(recipe.dataset.name)
    known, broken = _devices()
    made = {"baseline"}  # the recipe's model is the baseline stage
    exported_at = [i for i, (kind, _) in enumerate(specs) if kind == "export"]
    for i, (kind, spec) in enumerate(specs):
        step, at = STEPS[kind], ("steps", i, kind)
        criterion = getattr(spec, "criterion", None)
        if criterion is not None:
            problems += _criterion_problems(at + ("criterion",), criterion)
        for key, names in step.devices_named(spec):
            problems += [(at + (key,), _device_message(n, known, broken)) for n in names if n not in known]
        problems += [_missing(at, kind, spec, need, made) for need in step.reads(spec) if need not in made]
        writes = step.writes(spec)
        if exported_at and i > exported_at[-1]:
            problems += [(at, f"the {_stage_name(w)} model is never exported: put the {kind} step before export")
                         for w in writes if w in MODEL_STAGES]
        made |= set(writes)
        if step.last and i != len(specs) - 1:
            problems.append((at, f"the {kind} is written from what the steps before it measured: make it the last step"))
    return problems


def _missing(at: tuple, kind: str, spec, need: str, made: set) -> tuple[tuple, str]:
    if need == EXPORTS:
        return at, f"{kind} measures exported files: put an export step before it"
    if kind == "export" and spec.stages and need in spec.stages:
        at = at + ("stages", need)
    return at, f"no step before this {kind} makes stage '{need}' (made so far: {', '.join(sorted(made & set(MODEL_STAGES)))})"


def _stage_name(stage: str) -> str:
    return "QAT" if stage == "qat" else stage


def device_problems(names) -> list[str]:
    """One message per unknown or broken device among `names` (the command line's --device)."""
    known, broken = _devices()
    return [_device_message(n, known, broken) for n in names if n not in known]


def _dataset_problems(name: str) -> list[tuple[tuple, str]]:
    if name in LOADERS or Path(name).exists():
        return []
    if Path(name).suffix or "/" in name:
        return [(("dataset", "name"), f"dataset file or folder '{name}' does not exist (a relative path is read "
                                      "from the recipe's folder)")]
    return [(("dataset", "name"), f"unknown dataset '{name}' (built in: {', '.join(sorted(LOADERS))}; "
                                  "or a .npz file, or a folder of images by class)")]


def _criterion_problems(loc: tuple, name: str) -> list[tuple[tuple, str]]:
    try:
        parse_criterion(name)
    except EdgepruneError as e:
        return [(loc, f"{e.problem} ({e.fix})")]
    return []


def _devices():
    broken: dict = {}
    return load_profiles(broken=broken), broken


def _device_message(name: str, known: dict, broken: dict) -> str:
    if name in broken:
        return f"device profile '{name}' does not validate: {broken[name].problem}"
    return f"unknown device '{name}' (known: {', '.join(known)}; `edgeprune devices` lists them)"


def layer_keys_set(specs) -> bool:
    """Whether any step names layers (so the model must be read to check them)."""
    return any(getattr(spec, key, None) for kind, spec in specs for key in STEPS[kind].layer_keys)


def layer_problems(specs, model) -> list[tuple[tuple, str]]:
    """Layer names and patterns in the steps' settings that match no layer of `model` (the run's input
    model: pruning keeps layer names, so the later stages have the same ones)."""
    names = _layer_names(model)
    problems = []
    for i, (kind, spec) in enumerate(specs):
        for key in STEPS[kind].layer_keys:
            entries = getattr(spec, key, None) or []
            for entry in entries:
                try:
                    rx = re.compile(entry)
                except re.error as err:
                    problems.append((("steps", i, kind, key), f"'{entry}' is not a valid regular expression ({err})"))
                    continue
                if not any(n == entry or rx.fullmatch(n) for n in names):
                    problems.append((("steps", i, kind, key), f"'{entry}' matches no layer of model '{model.name}' "
                                                              f"(its layers: {_sample(names)})"))
    return problems


def _layer_names(model) -> list[str]:
    names, todo = [], list(model.layers)
    while todo:
        layer = todo.pop(0)
        names.append(layer.name)
        todo += list(getattr(layer, "layers", []) or [])  # nested models' own layers
    return names


def _sample(names: list[str], most: int = 12) -> str:
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")
