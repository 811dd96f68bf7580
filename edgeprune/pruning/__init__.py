"""Structured channel pruning: dependency groups on Keras graphs and physical channel removal."""
from edgeprune.pruning.api import analyse, apply_plan, prune, verify_equivalence
from edgeprune.pruning.plan import PrunePlan
from edgeprune.pruning.stats import model_stats

__all__ = ["analyse", "apply_plan", "prune", "verify_equivalence", "PrunePlan", "model_stats"]
