"""Per-layer cost on a device (isolated ops, a cost table on disk) and pruning that follows it.

``layer_costs(model, device, precisions)`` is the entry point for other areas; modules:
``tflite_ops`` (cut ops out of a .tflite), ``cost_table`` (the lookup table), ``measure`` (trials
through the executor), ``profile`` (parts vs whole), ``variants`` and ``allocate`` (device-aware pruning).
"""
from edgeprune.profiling.api import layer_costs, profile_model

__all__ = ["layer_costs", "profile_model"]
