"""The device-cost loop: export candidates, measure them on a device, choose.

Above ``export``, ``harness``, ``profiling`` (which only measures), ``pruning`` and ``strategies``:
``allocate`` (channels per group from measured per-op cost), ``prune`` (pruning by options, and the
recipe's device-cost mode), ``precision`` (which layers a mixed file keeps float, per device),
``search`` (the budget search over global ratios) and ``cli`` (``edgeprune search``).

This module stays light (no TensorFlow): what each loop can measure, so what its budget may limit
(the key sets live with the budget, edgeprune.budget, where the settings' schemas check them too).
"""
from edgeprune.budget import ALLOCATION_KEYS, SEARCH_KEYS

__all__ = ["ALLOCATION_KEYS", "SEARCH_KEYS"]
