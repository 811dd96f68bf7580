"""`make bench`: edgeprune vs PTQ int8 and TF-MOT's pruning recipes, measured side by side in one run.

`python -m edgeprune.bench_suite [--quick]` trains every variant with the same seed and epoch
budget, measures accuracy/size/latency/instructions, writes ``bench/results/<date>.json`` and
regenerates ``BENCHMARKS.md`` with a Pareto plot and the project's targets checked.
"""
from edgeprune.bench_suite.settings import BenchSettings, full_settings, quick_settings

__all__ = ["BenchSettings", "full_settings", "quick_settings"]
