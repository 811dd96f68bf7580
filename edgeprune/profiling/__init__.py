"""Per-layer cost on a device: isolated ops, measured once, kept in a cost table on disk.

``layer_costs(model, device, precisions)`` is the entry point for other areas; modules:
``tflite_ops`` (cut ops out of a .tflite), ``cost_table`` (the lookup table), ``measure`` (trials
through the executor), ``profile`` (parts vs whole), ``variants`` (a model's ops at other channel
counts).  This package only measures: the loops that choose from measurements (allocation, precision
per device, budget search) are :mod:`edgeprune.devicecost`.
"""
from edgeprune.profiling.api import layer_costs, profile_model

__all__ = ["layer_costs", "profile_model"]
