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

With ``precision="auto"`` the search also chooses each conv / dense layer's precision: the same greedy
may, at any point, keep one layer float in the int8 file (a mixed file), costed on that file's own
template (:class:`Templates`), so the QUANTIZE / DEQUANTIZE at its edges are counted.  Float loses no
accuracy that int8 keeps, so such a step costs nothing and is taken first whenever it saves.
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
from edgeprune.quantize.selective import compute_layers
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
    precision: str = "int8"                                           # what was costed: float32|float16|int8|mixed
    keep_float: list[str] = field(default_factory=list)              # mixed: the layers kept float
    taken_from: str | None = None   # a rival device whose allocation did better here (then `steps` are this device's path)

    def summary(self) -> dict:
        return {"precision": self.precision, "keep_float": self.keep_float, "taken_from": self.taken_from,
                "metric": self.metric, "baseline_cost": self.baseline_cost, "predicted_cost": self.predicted_cost,
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

    def per_layer(self, removed, layer_names) -> dict[str, float]:
        """{Keras layer: the device cost of its ops} in the candidate with `removed` cut."""
        model = self.variants.candidate(removed)
        sigs = self.variants.signatures(model)
        if self.table.missing(sigs):
            self.prefetch([removed])
        per: dict[str, float] = {}
        for u, sig in zip(self.variants.units, sigs):
            layer = unit_label(u.names, u.op, layer_names)
            per[layer] = per.get(layer, 0.0) + net_cost(self.table, sig)
        return per


def budget_limits(budget, device_metric: str) -> dict[str, float | tuple]:
    """{metric: limit} on a device costed by `device_metric` (:meth:`edgeprune.budget.Budget.device_limits`)."""
    return (Budget.parse(budget).require(ALLOCATION_KEYS, "device-cost allocation")
            .device_limits(device_metric))


class BudgetNotMet(EdgepruneError):
    """No channel counts reach the budget: says the cheapest reachable cost, the limit and what holds it."""

    @classmethod
    def at_floor(cls, cm: "CostModel", removed, cost: dict, limits: dict, device: str, precision,
                 channels: dict[str, tuple[int, int]], layer_names: list[str]) -> "BudgetNotMet":
        """precision: the file's, or a function of the layer (a search that chose it per layer)."""
        precision_of = precision if callable(precision) else (lambda _layer: precision)
        over = [m for m, lim in limits.items() if cost[m] > lim]
        what = ", ".join(f"{m} {_fmt(cost[m])} > {_fmt(limits[m])}" for m in over)
        held = ""
        if cm.on_device and cm.table.metric in over:
            per = cm.per_layer(removed, layer_names)
            floor = cost[cm.table.metric]
            top = sorted(per.items(), key=lambda kv: -kv[1])[:3]

            def shown(layer):
                full, kept = channels.get(layer, (None, None))
                p = precision_of(layer)
                return f"{layer} ({full}→{kept}, {p})" if full is not None else f"{layer} ({p})"
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
             weigh: str = "score", run_dir=None, best_effort: bool = False, rivals=(), log=None) -> Allocation:
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
    rivals: other devices whose allocation under the same budget is costed here too: one that meets the
    budget on `device` and loses less is taken, so the file allocated for `device` is never worse there
    than a file allocated for a rival (their measurements are cached per device like this one's).
    """
    budget = Budget.parse(budget).require(ALLOCATION_KEYS, "device-cost allocation")  # refused before any work
    log = log or (lambda *_: None)
    joint = precision == "auto"
    if joint and (template is not None or keep_float):
        raise EdgepruneError("precision auto chooses the layers kept float itself",
                             "drop keep_float (and template), or cost a fixed precision: int8, mixed, float32, float16")
    precision = precision if joint or template is not None else precision_name(precision)
    if not 0.0 < max_group_ratio < 1.0:
        raise EdgepruneError(f"max_group_ratio {max_group_ratio} is not in (0, 1)", "e.g. 0.95")
    profile = get_profile(device)
    table = CostTable(profile)
    limits = budget_limits(budget, table.metric)
    protect_first = device_cost_first_layer(protect_first)
    an = analyse(model, protect=list(protect), protect_first=protect_first)
    g = an.graph
    scores = compute_scores(g, criterion, dataset=dataset, aggregate=aggregate, seed=seed)
    if calibration is None and precision in ("int8", "mixed", "auto") and dataset is not None:
        calibration = dataset.calibration_samples(200, seed=seed)
    keep = frozenset(keep_float)
    fixed = None if joint else precision  # the file's precision when the search does not choose it
    cm_for = Templates(model, g, table, tuple(limits), calibration, executor=executor, host=host, log=log)
    if template is not None:
        cm_for.add(keep, template, fixed)

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

    def cost_of(counts, kept) -> dict:
        return cm_for(kept, fixed).cost(key(counts), removed_for(counts))

    full = {grp.id: grp.size for grp in groups}
    _prefetch_grid(cm_for(keep, fixed), groups, cands, full, removed_for)
    base = cost_of(full, keep)
    limits = resolve(limits, base)

    def saved(old: dict, new: dict) -> float:
        """What a step saves: the cost it removes as a share of the unpruned model's, summed over the limits
        not yet met (not capped at the limit).  With one limit it does not depend on the limit's value, so
        every budget on that metric walks the same path of steps and a looser one stops on it earlier: it
        never ships a file that lost more.  (With several limits, which ones are still exceeded steers it.)"""
        return sum((old[m] - new[m]) / base[m] for m, lim in limits.items() if old[m] > lim and base[m] > 0)

    def lost_at(counts: dict) -> float:
        """What a point has lost against the full model, in the steps' unit (score share or accuracy)."""
        if lost_to:
            return sum(lost_to[grp.id][counts[grp.id]] for grp in groups)
        return sum(sum(scores.get(c, 0.0) for c in order[grp.id][:grp.size - counts[grp.id]]) / total[grp.id]
                   for grp in groups)

    counts, cost, steps = dict(full), base, []
    layer_names = [layer.name for layer in model.layers]
    while excess(cost, limits) > 0:
        options = []  # (lost per saving, lost, -saving, what, new cost)
        for grp in groups:
            for k in (c for c in cands[grp.id] if c < counts[grp.id]):
                trial = {**counts, grp.id: k}
                new_cost = cost_of(trial, keep)
                gain = saved(cost, new_cost)
                if gain <= 0:  # a count that costs more on this device (a 1-channel first conv in float)
                    continue
                if lost_to:
                    lost = lost_to[grp.id][k] - lost_to[grp.id][counts[grp.id]]
                else:
                    lost = sum(scores.get(c, 0.0) for c in order[grp.id][grp.size - counts[grp.id]:grp.size - k]) / total[grp.id]
                options.append((lost / gain, lost, -gain, ("channels", grp.id, k), new_cost))
        if joint:
            for layer in cm_for.float_cheaper(keep, removed_for(counts), layer_names):
                new_cost = cost_of(counts, keep | {layer})
                gain = saved(cost, new_cost)
                # float keeps what int8 keeps, so the step loses nothing; it must not break a limit already met
                # (a limit still exceeded that it raises, the file's size, counts against its saving)
                if gain > 0 and all(new_cost[m] <= lim or cost[m] > lim for m, lim in limits.items()):
                    options.append((0.0, 0.0, -gain, ("float", layer, 0), new_cost))
        if not options:
            break
        pick = min(options, key=lambda o: o[:4])
        if excess(pick[4], limits) <= 0:
            # the path's next step meets the budget: finish with the step that meets it losing least (from
            # the same point, so a looser budget still loses no more)
            pick = min((o for o in options if excess(o[4], limits) <= 0), key=lambda o: (o[1], o[0], o[3]))
        _, lost, _, (kind, what, k), cost = pick
        if kind == "float":
            keep = keep | {what}
            _prefetch_grid(cm_for(keep, fixed), groups, cands, full, removed_for)
            steps.append({"layer": what, "precision": "float32", "importance_lost": 0.0, "cost": cost})
            log(f"  {what}: int8 → float, predicted " + ", ".join(f"{m} {v:,.6g}" for m, v in cost.items()))
            continue
        steps.append({"group": groups_by_id(groups)[what].sources[0], "from": counts[what], "to": k,
                      "importance_lost": round(lost, 6), "cost": cost})
        counts[what] = k
        log(f"  {steps[-1]['group']}: {steps[-1]['from']} → {k} channels, predicted "
            + ", ".join(f"{m} {v:,.6g}" for m, v in cost.items()))

    adopted = None
    for rival in rivals:
        theirs = allocate(model, rival, budget, precision=precision, criterion=criterion, dataset=dataset,
                          calibration=calibration, protect=protect, protect_first=protect_first,
                          min_channels=min_channels, max_group_ratio=max_group_ratio, step=step, aggregate=aggregate,
                          seed=seed, keep_float=keep_float, template=template, executor=executor, host=host,
                          weigh=weigh, run_dir=run_dir, best_effort=True,
                          log=lambda m, r=rival: log(f"  [{r}] {m}"))
        by_source = {grp.sources[0]: grp.id for grp in groups}
        their_counts = {by_source[name]: k for name, k in theirs.counts.items()}
        their_keep = frozenset(theirs.keep_float)
        their_cost = cost_of(their_counts, their_keep)
        better = excess(their_cost, limits) <= 0 and (excess(cost, limits) > 0 or
                                                       lost_at(their_counts) < lost_at(counts) - 1e-12)
        log(f"  {rival}'s allocation {theirs.counts} ({theirs.precision}) on {profile.name}: predicted "
            + ", ".join(f"{m} {v:,.6g}" for m, v in their_cost.items())
            + (", meets the budget losing less: taken" if better else ", kept this device's"))
        if better:
            counts, keep, cost, adopted = their_counts, their_keep, their_cost, rival

    chosen_precision = fixed or ("mixed" if keep else "int8")
    if excess(cost, limits) > 0 and not best_effort:
        raise BudgetNotMet.at_floor(cm_for(keep, fixed), removed_for(counts), cost, limits, profile.name,
                                    (lambda layer: "float32" if layer in keep else "int8") if joint else precision,
                                    {by.sources[0]: (full[i], counts[i]) for i, by in groups_by_id(groups).items()},
                                    layer_names)
    chosen = {grp.id: order[grp.id][:grp.size - counts[grp.id]] for grp in groups if counts[grp.id] < grp.size}
    settings = {"allocation": "device_cost", "device": profile.name, "cpu": profile.cpu, "precision": chosen_precision,
                "searched_precision": joint, "keep_float": sorted(keep), "rivals": list(rivals),
                "taken_from": adopted,
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
                      measured_ops=cm_for.measured, limits=limits, predicted=cost, baseline=base, steps=steps,
                      precision=chosen_precision, keep_float=sorted(keep), taken_from=adopted)


class Templates:
    """The unpruned model exported once per precision and set of layers kept float, each with its
    :class:`CostModel`: the joint search's mixed files are costed from their own templates (QUANTIZE /
    DEQUANTIZE at a float layer's edges included), converted only when the search considers them."""

    def __init__(self, model, g, table: CostTable, metrics: tuple[str, ...], calibration, *, executor=None,
                 host=None, log=None):
        self.model, self.g, self.table, self.metrics, self.calibration = model, g, table, metrics, calibration
        self.executor, self.host, self.log = executor, host, log or (lambda *_: None)
        self.models: dict[tuple, CostModel] = {}
        self.compute = compute_layers(model)

    def add(self, keep: frozenset, template: bytes, precision: str | None = None) -> CostModel:
        cm = CostModel(Variants(read_model(template), self.g), self.table, self.metrics, executor=self.executor,
                       host=self.host, log=self.log)
        self.models[(precision, keep)] = cm
        return cm

    def __call__(self, keep: frozenset, precision: str | None = None) -> CostModel:
        """The cost model of `precision`'s file (None: int8, or mixed with `keep` float)."""
        if (precision, keep) in self.models:
            return self.models[(precision, keep)]
        name = precision or ("mixed" if keep else "int8")
        if keep and name == "mixed":
            self.log(f"costing the mixed file with {', '.join(sorted(keep))} float")
        return self.add(keep, export_bytes(self.model, name, self.calibration, sorted(keep)), precision)

    @property
    def measured(self) -> int:
        return sum(cm.measured for cm in self.models.values())

    def float_cheaper(self, keep: frozenset, removed, layer_names) -> list[str]:
        """Int8 layers of `keep`'s file whose ops cost less in float32 at these channel counts, each op costed
        alone (a screen: the mixed file with the layer float, edges included, then decides)."""
        current = self(keep)
        if not current.on_device:
            return []  # size alone: a float layer is never smaller
        q8 = current.per_layer(removed, layer_names)
        f32 = self(frozenset(), "float32").per_layer(removed, layer_names)
        return [layer for layer in self.compute
                if layer not in keep and layer in q8 and layer in f32 and f32[layer] < q8[layer]]


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
