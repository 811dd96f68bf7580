"""Structured channel pruning: dependency groups on Keras graphs and physical channel removal."""
from edgeprune.pruning.api import analyse, apply_plan, prune, verify_equivalence
from edgeprune.pruning.plan import PrunePlan
from edgeprune.pruning.stats import model_stats
from edgeprune.pruning.verify import verify_inputs, verify_pruning

__all__ = ["analyse", "apply_plan", "prune", "verify_equivalence", "verify_inputs", "verify_pruning", "PrunePlan",
           "model_stats"]
