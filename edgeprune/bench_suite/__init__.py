"""`make bench`: edgeprune's own recipes against PTQ int8 and TF-MOT, on the emulated boards.

`python -m edgeprune.bench_suite [--suite recipes/bench/suite.yaml] [--quick]` runs the suite's
product recipes (``edgeprune run``'s steps, trials through :mod:`edgeprune.executor`), writes
``bench/results/<date>.json`` and regenerates ``BENCHMARKS.md`` from it, targets checked.
"""
from edgeprune.bench_suite.suite import Suite, load_suite

__all__ = ["Suite", "load_suite"]
