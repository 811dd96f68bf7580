"""The importance criteria's names and their spelling, known without TensorFlow.

Recipes and the command line check a criterion here before anything loads (this module sits outside
``edgeprune.pruning``, whose import loads TensorFlow). The functions are registered under the same
names in :mod:`edgeprune.pruning.importance`, which refuses a name not listed here; tests/test_cli.py
checks that every listed name is registered.
"""
from __future__ import annotations

from edgeprune.errors import EdgepruneError

CRITERIA = ("l1", "l2", "bn_gamma", "random", "taylor", "mean_activation", "apoz")
DATA_CRITERIA = ("taylor", "mean_activation", "apoz")  # need real inputs (a dataset)
THRESHOLD_PREFIX = "threshold_"
THRESHOLD_K = 1.0


def parse_criterion(name: str) -> tuple[str, float | None]:
    """(base criterion, k) for ``threshold_<base>[:k=K]``, (name, None) for a plain criterion.

    Raises EdgepruneError naming the known criteria for anything else."""
    if name in CRITERIA:
        return name, None
    if name.startswith(THRESHOLD_PREFIX):
        base, _, opt = name[len(THRESHOLD_PREFIX):].partition(":")
        k = THRESHOLD_K
        if opt:
            key, _, val = opt.partition("=")
            try:
                k = float(val)
            except ValueError:
                k = None
            if key != "k" or k is None or k < 0:
                raise EdgepruneError(f"criterion '{name}': bad option '{opt}'", "write it as threshold_l1:k=1.5 (k ≥ 0)")
        if base in CRITERIA:
            return base, k
    known = list(CRITERIA) + [f"{THRESHOLD_PREFIX}<base>[:k=K]"]
    raise EdgepruneError(f"unknown criterion '{name}'", f"use one of {', '.join(known)}")


def criterion_help(needs: str = "data") -> str:
    """The --criterion help text: every registered criterion, and which of them need `needs`."""
    return (f"Importance criterion: {', '.join(CRITERIA)}, or threshold_<base>[:k=K] (a group's outliers first); "
            f"{', '.join(DATA_CRITERIA)} need {needs}.")
