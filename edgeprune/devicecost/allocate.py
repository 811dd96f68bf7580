"""Channels per dependency group from measured device cost (NetAdapt-style greedy), as a PrunePlan.

(Moved from ``edgeprune.profiling.allocate``: the loop that measures and chooses sits above measurement.)

Each group may keep one of its *candidate counts* (multiples of ``step``, and its full count); the
table decides which of them the device's kernels like, since cost is not monotonic in channels
(a first conv 1→8 costs fewer A72 instructions than 1→4 in float).  Starting from the full model,
every iteration takes the step — one group to a lower candidate count — with the least importance
lost per cost saved, until the budget is met.  Importance is the existing criteria's channel
score; a group's loss is the share of its total score that the step removes (its lowest channels).
A step's cost is the candidate model's predicted cost: the per-invoke overhead plus the table's
cost of every op, the ops cut to the candidate's shapes (:mod:`edgeprune.profiling.variants`).
Costs the table lacks are measured in batches, so a search never measures the same op twice.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from edgeprune.budget import Budget, resolve
from edgeprune.devicecost import ALLOCATION_KEYS
from edgeprune.errors import EdgepruneError
from edgeprune.harness.profiles import get_profile
from edgeprune.profiling.api import export_bytes, precision_name
from edgeprune.profiling.cost_table import EMPTY_KEY, CostTable
from edgeprune.profiling.measure import measure_missing, net_cost
from edgeprune.profiling.profile import unit_label
from edgeprune.profiling.tflite_ops import isolate, read_model, write_model
from edgeprune.profiling.variants import Variants
from edgeprune.prune_options import device_cost_first_layer
from edgeprune.pruning.api import analyse, first_weight_layer
from edgeprune.pruning.importance import compute_scores
from edgeprune.pruning.plan import build_plan
from edgeprune.strategies import sensitivity

GRID_LIMIT = 4000  # isolated-op variants measured up front in one batch; more are measured as needed


@dataclass
class Allocation:
    plan: object                    # PrunePlan
    counts: dict[str, int]          # first source layer of each group -> channels kept
    full: dict[str, int]
    metric: str                     # the first limit's metric: board_ms | latency_ms | instructions | size_kb
    baseline_cost: float            # the unpruned model at this precision, predicted from the table
    predicted_cost: float
    budget: float                   # the limit on `metric`
    met: bool                       # every limit met
    measured_ops: int
    limits: dict[str, float] = field(default_factory=dict)          # metric -> limit
    predicted: dict[str, float] = field(default_factory=dict)       # metric -> predicted cost
    baseline: dict[str, float] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"metric": self.metric, "baseline_cost": self.baseline_cost, "predicted_cost": self.predicted_cost,
                "budget": self.budget, "met": self.met, "reduction": self.baseline_cost / max(self.predicted_cost, 1e-12),
                "limits": self.limits, "predicted": self.predicted, "baseline": self.baseline,
                "counts": self.counts, "full": self.full, "measured_ops": self.measured_ops, "steps": self.steps}


def candidate_counts(size: int, min_kept: int, step: int = 4) -> list[int]:
    """Multiples of `step` (coarser above 64: 8, 16, 32 apart) from `min_kept` up, and the full count."""
    out = {size}
    k = step
    while k < size:
        if k >= min_kept:
            out.add(k)
        k += step if k < 64 else (8 if k < 128 else (16 if k < 256 else 32))
    return sorted(out)


class CostModel:
    """Predicted costs of channel-count candidates: the device metric from the table (measuring what
    it lacks) and/or the candidate file's size."""

    def __init__(self, variants, table: CostTable, metrics: tuple[str, ...], executor=None, host=None, log=None):
        self.variants, self.table, self.metrics = variants, table, metrics
        self.executor, self.host, self.log = executor, host, log or (lambda *_: None)
        self.memo: dict[tuple, dict] = {}
        self.measured = 0

    @property
    def on_device(self) -> bool:
        return self.table.metric in self.metrics

    def _pending(self, removed_sets) -> dict:
        """{signature: isolated bytes} for the ops of these candidates that the table lacks."""
        items = {}
        for removed in removed_sets:
            model = self.variants.candidate(removed)
            for u, sig in zip(self.variants.units, self.variants.signatures(model)):
                if sig not in self.table and sig not in items:
                    items[sig] = isolate(model, u)
        return items

    def prefetch(self, removed_sets) -> None:
        if not self.on_device:
            return
        items = self._pending(removed_sets)
        if items or EMPTY_KEY not in self.table:
            self.log(f"measuring {len(items)} isolated ops on {self.table.profile.name}")
            self.measured += measure_missing(self.table, items, executor=self.executor, host=self.host)

    def cost(self, key: tuple, removed) -> dict[str, float]:
        if key in self.memo:
            return self.memo[key]
        model = self.variants.candidate(removed)
        value = {}
        if "size_kb" in self.metrics:
            value["size_kb"] = len(write_model(model)) / 1024
        if self.on_device:
            sigs = self.variants.signatures(model)
            if self.table.missing(sigs):
                self.prefetch([removed])
            value[self.table.metric] = self.table.get(EMPTY_KEY) + sum(net_cost(self.table, s) for s in sigs)
        self.memo[key] = value
        return value


def budget_limits(budget, device_metric: str) -> dict[str, float | tuple]:
    """{metric: limit} on a device costed by `device_metric` (:meth:`edgeprune.budget.Budget.device_limits`)."""
    return (Budget.parse(budget).require(ALLOCATION_KEYS, "device-cost allocation")
            .device_limits(device_metric))


class BudgetNotMet(EdgepruneError):
    """No channel counts reach the budget: says the cheapest reachable cost, the limit and what holds it."""

    @classmethod
    def at_floor(cls, cm: "CostModel", removed, cost: dict, limits: dict, device: str, precision: str,
                 channels: dict[str, tuple[int, int]], layer_names: list[str]) -> "BudgetNotMet":
        over = [m for m, lim in limits.items() if cost[m] > lim]
        what = ", ".join(f"{m} {_fmt(cost[m])} > {_fmt(limits[m])}" for m in over)
        held = ""
        if cm.on_device and cm.table.metric in over:
            model = cm.variants.candidate(removed)
            per: dict[str, float] = {}
            for u, sig in zip(cm.variants.units, cm.variants.signatures(model)):
                layer = unit_label(u.names, u.op, layer_names)
                per[layer] = per.get(layer, 0.0) + net_cost(cm.table, sig)
            floor = cost[cm.table.metric]
            top = sorted(per.items(), key=lambda kv: -kv[1])[:3]

            def shown(layer):
                full, kept = channels.get(layer, (None, None))
                return f"{layer} ({full}→{kept}, {precision})" if full is not None else f"{layer} ({precision})"
            held = "; the floor is held by " + ", ".join(f"{shown(n)} {v / floor:.0%}" for n, v in top if floor > 0)
        return cls(f"the budget cannot be met on {device}: the cheapest channel counts reach {what}{held}",
                   "raise the limit, cost another precision, or set best_effort: true (--best-effort) to ship "
                   "the cheapest found")


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def excess(costs: dict, limits: dict) -> float:
    """How far over budget, summed over the limits as fractions (0: every limit met)."""
    return sum(max(0.0, costs[m] / lim - 1.0) for m, lim in limits.items())


def allocate(model, device: str, budget, *, precision: str = "int8", criterion: str = "l1", dataset=None,
             calibration=None, protect=(), protect_first: bool | None = None, min_channels: int = 1,
             max_group_ratio: float = 0.95, step: int = 4, aggregate: str = "mean", seed: int = 0,
             keep_float=(), template: bytes | None = None, executor=None, host: str | None = None,
             weigh: str = "score", run_dir=None, best_effort: bool = False, log=None) -> Allocation:
    """Choose channels per group for `device` under `budget`; returns an :class:`Allocation` with its PrunePlan.

    budget: one or more of ``latency_ms`` (the device's time: estimated board time on emulated
    boards, measured p50 elsewhere), ``instructions`` (emulated profiles without a board model),
    ``size_kb`` (file size) and ``reduction`` (r× below the unpruned model in the device's metric),
    all to be met, e.g. ``{latency_ms: 0.4, size_kb: 28}`` (a :class:`edgeprune.budget.Budget`, or anything
    :meth:`~edgeprune.budget.Budget.parse` reads).  precision ``mixed``: int8 with the
    `keep_float` layers float.  template: the exported unpruned model to cost, if not `model`
    exported at `precision`.  weigh: what a step loses — ``score``, the share of its group's channel
    score; or ``accuracy``, the validation accuracy lost when that group alone is cut to the count
    (:func:`edgeprune.strategies.sensitivity.count_sensitivity`: one trial per group and count, through
    `executor`, kept under `run_dir`).
    The plan replays with :func:`edgeprune.pruning.prune` (``plan=``).  protect_first: only True
    protects the first layer; unset (None) here means False, the measured cost decides about it too.
    A budget no channel counts reach raises :class:`BudgetNotMet`, naming the cheapest reachable cost and
    the layers that hold it; ``best_effort=True`` returns that cheapest allocation instead (``met`` False).
    """
    budget = Budget.parse(budget).require(ALLOCATION_KEYS, "device-cost allocation")  # refused before any work
    log = log or (lambda *_: None)
    precision = precision_name(precision) if template is None else precision
    if not 0.0 < max_group_ratio < 1.0:
        raise EdgepruneError(f"max_group_ratio {max_group_ratio} is not in (0, 1)", "e.g. 0.95")
    profile = get_profile(device)
    table = CostTable(profile)
    limits = budget_limits(budget, table.metric)
    protect_first = device_cost_first_layer(protect_first)
    an = analyse(model, protect=list(protect), protect_first=protect_first)
    g = an.graph
    scores = compute_scores(g, criterion, dataset=dataset, aggregate=aggregate, seed=seed)
    if template is None:
        if calibration is None and precision in ("int8", "mixed") and dataset is not None:
            calibration = dataset.calibration_samples(200, seed=seed)
        template = export_bytes(model, precision, calibration, keep_float)
    variants = Variants(read_model(template), g)

    groups = [grp for grp in an.groups if grp.prunable]
    order = {grp.id: sorted(grp.prunable, key=lambda c: (scores.get(c, 0.0), c)) for grp in groups}
    total = {grp.id: sum(scores.get(c, 0.0) for c in grp.channels) or 1.0 for grp in groups}
    cands = {}
    for grp in groups:
        floor = max(min_channels, grp.size - len(grp.prunable), math.ceil(grp.size * (1.0 - max_group_ratio)))
        cands[grp.id] = candidate_counts(grp.size, floor, step)

    lost_to = _accuracy_lost(model, dataset, groups, cands, weigh, criterion=criterion, executor=executor,
                             run_dir=run_dir, protect=protect, protect_first=protect_first, seed=seed, log=log)

    def removed_for(counts: dict) -> list[int]:
        return [c for grp in groups for c in order[grp.id][:grp.size - counts[grp.id]]]

    def key(counts):
        return tuple(counts[grp.id] for grp in groups)

    cm = CostModel(variants, table, tuple(limits), executor=executor, host=host, log=log)
    full = {grp.id: grp.size for grp in groups}
    _prefetch_grid(cm, groups, cands, full, removed_for)
    base = cm.cost(key(full), removed_for(full))
    limits = resolve(limits, base)

    def saved(old: dict, new: dict) -> float:
        """What a step saves: the cost it removes as a share of the unpruned model's, summed over the limits
        not yet met (not capped at the limit).  With one limit it does not depend on the limit's value, so
        every budget on that metric walks the same path of steps and a looser one stops on it earlier: it
        never ships a file that lost more.  (With several limits, which ones are still exceeded steers it.)"""
        return sum((old[m] - new[m]) / base[m] for m, lim in limits.items() if old[m] > lim and base[m] > 0)

    counts, cost, steps = dict(full), base, []
    while excess(cost, limits) > 0:
        options = []
        for grp in groups:
            for k in (c for c in cands[grp.id] if c < counts[grp.id]):
                trial = {**counts, grp.id: k}
                new_cost = cm.cost(key(trial), removed_for(trial))
                gain = saved(cost, new_cost)
                if gain <= 0:  # a count that costs more on this device (a 1-channel first conv in float)
                    continue
                if lost_to:
                    lost = lost_to[grp.id][k] - lost_to[grp.id][counts[grp.id]]
                else:
                    lost = sum(scores.get(c, 0.0) for c in order[grp.id][grp.size - counts[grp.id]:grp.size - k]) / total[grp.id]
                options.append((lost / gain, lost, -gain, grp.id, k, new_cost))
        if not options:
            break
        pick = min(options, key=lambda o: o[:5])
        if excess(pick[5], limits) <= 0:
            # the path's next step meets the budget: finish with the step that meets it losing least (from
            # the same point, so a looser budget still loses no more)
            pick = min((o for o in options if excess(o[5], limits) <= 0), key=lambda o: (o[1], o[0], o[3], o[4]))
        _, lost, _, gid, k, cost = pick
        steps.append({"group": groups_by_id(groups)[gid].sources[0], "from": counts[gid], "to": k,
                      "importance_lost": round(lost, 6), "cost": cost})
        counts[gid] = k
        log(f"  {steps[-1]['group']}: {steps[-1]['from']} → {k} channels, predicted "
            + ", ".join(f"{m} {v:,.6g}" for m, v in cost.items()))

    if excess(cost, limits) > 0 and not best_effort:
        raise BudgetNotMet.at_floor(cm, removed_for(counts), cost, limits, profile.name, precision,
                                    {by.sources[0]: (full[i], counts[i]) for i, by in groups_by_id(groups).items()},
                                    [layer.name for layer in model.layers])
    chosen = {grp.id: order[grp.id][:grp.size - counts[grp.id]] for grp in groups if counts[grp.id] < grp.size}
    settings = {"allocation": "device_cost", "device": profile.name, "cpu": profile.cpu, "precision": precision,
                "keep_float": list(keep_float),
                "budget": dict(budget), "limits": limits, "criterion": criterion, "aggregate": aggregate, "step": step,
                "min_channels": min_channels, "max_group_ratio": max_group_ratio, "protect": list(protect), "weigh": weigh,
                "protect_first": protect_first, "seed": seed, "ratio": None, "round_to": step}
    if protect_first:
        settings["protect"] = [*settings["protect"], first_weight_layer(model)]
    plan = build_plan(g, an.groups, chosen, scores, settings, model)
    by_id = groups_by_id(groups)
    primary = next(iter(limits))
    return Allocation(plan=plan, counts={by_id[i].sources[0]: counts[i] for i in counts},
                      full={by_id[i].sources[0]: full[i] for i in full}, metric=primary, baseline_cost=base[primary],
                      predicted_cost=cost[primary], budget=limits[primary], met=excess(cost, limits) <= 0,
                      measured_ops=cm.measured, limits=limits, predicted=cost, baseline=base, steps=steps)


def _accuracy_lost(model, dataset, groups, cands, weigh: str, *, log, **scan) -> dict[int, dict[int, float]]:
    """{group id: {count: val accuracy lost}} for weigh="accuracy" (made monotone: fewer channels never
    lose less); {} for weigh="score"."""
    if weigh == "score":
        return {}
    if weigh != "accuracy":
        raise EdgepruneError(f"unknown allocation weigh '{weigh}'", "use score or accuracy")
    if dataset is None:
        raise EdgepruneError("weigh: accuracy needs the dataset's validation split", "give the allocation a dataset")
    log(f"validation accuracy of {sum(len(c) - 1 for c in cands.values())} single-group cuts")
    base, acc = sensitivity.count_sensitivity(model, dataset, {grp.sources[0]: cands[grp.id] for grp in groups}, **scan)
    out = {}
    for grp in groups:
        lost, worst = {grp.size: 0.0}, 0.0
        for k in sorted(cands[grp.id], reverse=True):
            if k < grp.size:
                worst = max(worst, base - acc[grp.sources[0]][k])
                lost[k] = worst
        out[grp.id] = lost
    return out


def groups_by_id(groups) -> dict:
    return {grp.id: grp for grp in groups}


def _prefetch_grid(cm: CostModel, groups, cands, full, removed_for) -> None:
    """Measure, in one batch, every op variant the greedy can reach (each op only varies with the groups it touches).

    Which groups an op depends on is found by moving one group at a time; the grid of an op is the
    product of its groups' candidate counts.  Beyond GRID_LIMIT variants the rest is measured lazily.
    """
    if not cm.on_device or not groups:
        return
    base_sigs = cm.variants.signatures(cm.variants.candidate(removed_for(full)))
    touches = {i: [] for i in range(len(base_sigs))}
    for grp in groups:
        low = {**full, grp.id: cands[grp.id][0]}
        sigs = cm.variants.signatures(cm.variants.candidate(removed_for(low)))
        for i, (a, b) in enumerate(zip(base_sigs, sigs)):
            if a != b:
                touches[i].append(grp.id)
    points = set()
    for dep in touches.values():
        grid = itertools.product(*(cands[gid] for gid in dep))
        for combo in grid:
            points.add(tuple(sorted(zip(dep, combo))))
            if len(points) > GRID_LIMIT:
                break
    removed_sets = [removed_for({**full, **dict(p)}) for p in sorted(points)]
    cm.prefetch(removed_sets)
