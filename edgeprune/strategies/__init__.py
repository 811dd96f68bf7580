"""Pruning strategies on top of the engine: schedules, sensitivity, sparsity training, input-feature
pruning (the budget search, which exports and measures, is :mod:`edgeprune.devicecost.search`).  Submodules import TensorFlow lazily; import the one you need:

- :mod:`edgeprune.strategies.schedule`    ``gradual_prune`` (one-shot is ``edgeprune.prune``)
- :mod:`edgeprune.strategies.sensitivity` ``sensitivity_scan``, ``sensitivity_overrides``
- :mod:`edgeprune.strategies.sparsity`    ``sparsity_train``
- :mod:`edgeprune.strategies.features`    ``prune_input_features``, ``slice_features``
- :mod:`edgeprune.strategies.sparse_1x1`  ``Sparse1x1`` (zeros in 1×1 conv kernels for XNNPACK's sparse path)
"""
