"""The bench manifest (``recipes/bench/suite.yaml``): which product recipes to run and what to judge.

A *group* compares, on one model and data set:

- ``reference``: a recipe whose train step is the baseline every variant of the group shares; it
  keeps training the dense model for the group's epoch budget and ships float32 and PTQ int8;
- ``edgeprune``: recipes of the product whose "which file to ship" per device is what the bench judges;
- ``tfmot``: TF-MOT magnitude pruning as a peer baseline (optional).

Every recipe of a group must start with the same train step and spend the same number of epochs
after it; :func:`check_budget` refuses a manifest that breaks this.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeprune.errors import EdgepruneError
from edgeprune.recipe.schema import load_recipe

DEFAULT_SUITE = Path(__file__).resolve().parent.parent.parent / "recipes" / "bench" / "suite.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Targets(_Strict):
    device: str = Field(description="the device whose shipped file is judged")
    max_loss_pt: float = Field(gt=0, description="accuracy loss vs the float32 reference, in points")
    x_vs_ptq: Optional[float] = Field(None, gt=0, description="× below PTQ int8 in the device's metric "
                                                              "(estimated board time on emulated boards)")
    size_x_vs_float: Optional[float] = Field(None, gt=0, description="× smaller file than float32")
    baseline_accuracy: Optional[float] = Field(None, gt=0, le=1, description="float32 reference test accuracy")
    also_devices: list[str] = Field([], description="more devices whose shipped files are judged by x_vs_ptq")
    allocated_for: dict[str, str] = Field(
        {}, description="device → the recipe allocated for it: on each such device, its file must cost no more than "
                        "the files the other listed recipes ship there")


class TfmotSpec(_Strict):
    sparsities: list[float] = Field([0.5], min_length=1)
    learning_rate: float = Field(5e-4, gt=0, lt=1)


class Group(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    reference: str
    edgeprune: list[str] = Field(min_length=1)
    tfmot: Optional[TfmotSpec] = None
    targets: Targets
    same_budget: bool = Field(True, description="false: the edgeprune recipes may train longer than the reference "
                                                "(a comparison with a recipe's own baseline, as trained)")


class Suite(_Strict):
    devices: list[str] = Field(min_length=1)
    groups: list[Group] = Field(min_length=1)
    layer_costs: list[str] = Field([], description="devices on which the compared files are profiled per layer")
    path: Optional[str] = None  # filled in by load_suite

    def recipe_path(self, rel: str) -> Path:
        return (Path(self.path).parent / rel).resolve()


def load_suite(path=DEFAULT_SUITE) -> Suite:
    path = Path(path)
    fix = f"see {DEFAULT_SUITE.name} in recipes/bench for the format"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise EdgepruneError(f"cannot read bench suite {path}: {e.strerror}", "check the path") from None
    try:
        suite = Suite.model_validate({**(data or {}), "path": str(path)})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise EdgepruneError(f"{path}: '{key}': {err['msg']}", fix) from None
    for g in suite.groups:
        for rel in [g.reference, *g.edgeprune]:
            if not suite.recipe_path(rel).is_file():
                raise EdgepruneError(f"{path}: group {g.name}: recipe {rel} does not exist", fix)
    return suite


# ---------------------------------------------------------------------------------------------
# the epoch budget


def epochs_after_training(recipe) -> int:
    """Epochs a recipe trains after its first (train) step: fine-tuning, QAT, gradual-pruning rounds."""
    total = 0
    for kind, spec in recipe.step_specs()[1:]:
        if kind in ("train", "sparsity_train", "finetune"):
            total += spec.epochs
        elif kind == "quantize" and spec.mode == "qat":
            total += spec.epochs
        elif kind == "prune" and spec.schedule != "oneshot":
            total += spec.finetune_epochs * (spec.steps - 1)
    return total


def train_step(recipe):
    kind, spec = recipe.step_specs()[0]
    if kind != "train":
        raise EdgepruneError(f"bench recipe {recipe.name} starts with '{kind}', not a train step",
                             "every bench recipe starts with the group's shared train step")
    return spec


def check_budget(suite: Suite) -> dict[str, dict]:
    """Per group: {train_epochs, after_epochs, total_epochs}; raises if a recipe trains differently."""
    out = {}
    for g in suite.groups:
        ref = load_recipe(suite.recipe_path(g.reference))
        shared, after = train_step(ref), epochs_after_training(ref)
        for rel in g.edgeprune:
            r = load_recipe(suite.recipe_path(rel))
            if (r.model, r.dataset, r.seed) != (ref.model, ref.dataset, ref.seed) or train_step(r) != shared:
                raise EdgepruneError(f"group {g.name}: {rel} does not share the reference's model, data and train step",
                                     f"copy the train step and dataset of {g.reference}")
            if g.same_budget and epochs_after_training(r) != after:
                raise EdgepruneError(
                    f"group {g.name}: {rel} trains {epochs_after_training(r)} epochs after the baseline, "
                    f"the reference {after}", "give every variant the same epoch budget")
        out[g.name] = {"train_epochs": shared.epochs, "after_epochs": after, "total_epochs": shared.epochs + after,
                       "same_budget": g.same_budget}
    return out
