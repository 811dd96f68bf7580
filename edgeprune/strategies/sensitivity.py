"""Per-group sensitivity: prune one dependency group at a time and watch validation accuracy.

Each (group, ratio) is one trial (a file-in, JSON-out function run by an executor); the scan
writes ``sensitivity.json`` and :func:`sensitivity_overrides` turns the curves into per-group
ratios that spend the channel budget where accuracy suffers least.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.pruning import analyse, model_stats, prune
from edgeprune.pruning.importance import compute_scores, scores_by_channel
from edgeprune.pruning.recalibrate import recalibrate_batchnorm
from edgeprune.strategies.trialio import load_arrays, load_model_file, save_arrays, save_model_file, write_json
from edgeprune.train import evaluate

DEFAULT_RATIOS = (0.1, 0.3, 0.5, 0.7)
RECALIBRATION_SAMPLES = 2048  # training images for BatchNorm recalibration after each cut


@dataclass
class SensitivityResult:
    ratios: list[float]
    baseline_val_accuracy: float
    curves: dict[str, list[float]]              # group label -> val accuracy per ratio
    groups: dict[str, dict] = field(default_factory=dict)  # label -> {"sources", "channels", "prunable"}
    criterion: str = "l1"
    val_samples: int = 0
    path: str | None = None

    def to_dict(self) -> dict:
        return {"ratios": self.ratios, "baseline_val_accuracy": self.baseline_val_accuracy, "curves": self.curves,
                "groups": self.groups, "criterion": self.criterion, "val_samples": self.val_samples}

    def drops(self, label: str) -> list[float]:
        """Accuracy lost (fraction, ≥ 0) at each ratio for one group."""
        return [max(0.0, self.baseline_val_accuracy - a) for a in self.curves[label]]

    @classmethod
    def load(cls, path) -> "SensitivityResult":
        try:
            d = json.loads(Path(path).read_text())
            return cls(list(d["ratios"]), float(d["baseline_val_accuracy"]), dict(d["curves"]),
                       dict(d.get("groups", {})), d.get("criterion", "l1"), int(d.get("val_samples", 0)), str(path))
        except (OSError, ValueError, KeyError) as e:
            raise EdgepruneError(f"cannot read sensitivity file {path}: {e}",
                                 "pass a sensitivity.json written by a sensitivity scan") from None


def group_label(sources) -> str:
    return "+".join(sources)


def sensitivity_trial(*, model_path: str, data_path: str, scores_path: str, out_path: str, label: str, source: str,
                      ratio: float, criterion: str, protect: list, protect_first: bool, seed: int) -> dict:
    """Prune only the group containing `source` by `ratio`, no fine-tuning; val accuracy → JSON.
    The channel scores (`scores_path`) were computed once for the whole scan."""
    model = load_model_file(model_path)
    data = load_arrays(data_path)
    pruned, plan = prune(model, 0.0, criterion=criterion, overrides={re.escape(source): ratio}, protect=protect,
                         protect_first=protect_first, dataset=data, seed=seed,
                         channel_scores=json.loads(Path(scores_path).read_text()))
    recalibrate_batchnorm(pruned, data.x_train)  # what the prune step does too (edgeprune.pruning.recalibrate)
    row = next(g for g in plan.groups if source in g["sources"])
    stats = model_stats(pruned)
    result = {"kind": "sensitivity", "group": label, "source": source, "ratio": ratio, "criterion": criterion,
              "channels": row["channels"], "kept": row["kept"], "params": stats["params"], "macs": stats["macs"],
              "val_accuracy": _accuracy(evaluate(pruned, data.x_val, data.y_val)), "val_samples": int(len(data.y_val))}
    return write_json(out_path, result)


def _describe_trial(result: dict, done: list) -> str:
    """Progress line of one scan trial, with the group that lost least at this ratio so far."""
    same = [r for r in done if r["ratio"] == result["ratio"]]
    robust = max(same, key=lambda r: r["val_accuracy"])
    return (f"{result['group']} pruned {result['ratio']:.0%}: val acc {result['val_accuracy']:.4f}  "
            f"(most robust at {result['ratio']:.0%} so far: {robust['group']} {robust['val_accuracy']:.4f})")


def _accuracy(x: float) -> float:
    return round(float(x), 6)


def sensitivity_scan(model, dataset, *, ratios=DEFAULT_RATIOS, criterion: str = "l1", executor=None, run_dir=None,
                     max_val_samples: int = 2000, protect=(), protect_first: bool | None = None, seed: int = 0) -> SensitivityResult:
    """Prune each dependency group alone at each ratio and measure validation accuracy (no fine-tuning).

    Writes ``run_dir/sensitivity.json`` and one JSON per trial under ``run_dir/sensitivity/``.
    """
    ratios = [float(r) for r in ratios]
    if not ratios or any(not 0.0 < r < 1.0 for r in ratios) or ratios != sorted(set(ratios)):
        raise EdgepruneError(f"sensitivity ratios {ratios} must be increasing fractions in (0, 1)", "e.g. 0.1,0.3,0.5,0.7")
    with _Trials(model, dataset, run_dir, max_val_samples, protect, protect_first) as trials:
        cuts = [(g, r, f"r{round(r * 100):02d}") for g in trials.groups for r in ratios]
        results, baseline = trials.run(cuts, criterion=criterion, executor=executor, seed=seed)
        labels = [group_label(g.sources) for g in trials.groups]
        curves = {label: [None] * len(ratios) for label in labels}
        for res in results:
            curves[res["group"]][ratios.index(res["ratio"])] = res["val_accuracy"]
        result = SensitivityResult(
            ratios=ratios, baseline_val_accuracy=baseline, curves=curves,
            groups={group_label(g.sources): {"sources": g.sources, "channels": g.size, "prunable": len(g.prunable)}
                    for g in trials.groups},
            criterion=criterion, val_samples=trials.val_samples)
        if trials.keep:
            out = Path(run_dir) / "sensitivity.json"
            write_json(out, result.to_dict())
            result.path = str(out)
        return result


def count_sensitivity(model, dataset, counts: dict[str, list[int]], *, criterion: str = "l1", executor=None,
                      run_dir=None, max_val_samples: int = 2000, protect=(), protect_first: bool = False,
                      seed: int = 0) -> tuple[float, dict[str, dict[int, float]]]:
    """Validation accuracy with one group cut to each given channel count, the others whole (no fine-tuning).

    counts: {a group's first source layer: [channel counts to try]}.  Returns (the unpruned model's
    val accuracy, {source: {count: val accuracy}}); trials as in :func:`sensitivity_scan`.
    """
    with _Trials(model, dataset, run_dir, max_val_samples, protect, protect_first) as trials:
        by_source = {g.sources[0]: g for g in trials.groups}
        unknown = sorted(set(counts) - set(by_source))
        if unknown:
            raise EdgepruneError(f"no prunable group starts at {', '.join(unknown)}", "name a group's first source layer")
        cuts = [(by_source[s], (by_source[s].size - k) / by_source[s].size, f"k{k:04d}")
                for s, ks in counts.items() for k in ks if 0 < k < by_source[s].size]
        results, baseline = trials.run(cuts, criterion=criterion, executor=executor, seed=seed)
        out: dict[str, dict[int, float]] = {s: {} for s in counts}
        for res in results:
            out[res["source"]][int(res["kept"])] = res["val_accuracy"]
        return baseline, out


class _Trials:
    """The model and a slice of the data saved for sensitivity trials (under run_dir/sensitivity/, or a temp dir)."""

    def __init__(self, model, dataset, run_dir, max_val_samples: int, protect, protect_first: bool | None):
        if len(dataset.x_val) == 0:
            raise EdgepruneError("the sensitivity scan needs a validation split", "use a dataset with val_fraction > 0")
        self.model, self.protect, self.protect_first = model, list(protect), protect_first
        self.analysis = analyse(model, self.protect, protect_first)
        self.groups = [g for g in self.analysis.groups if g.prunable]
        if not self.groups:  # refused before anything is written
            raise EdgepruneError(f"model '{model.name}' has no prunable channel groups",
                                 "check --protect, or use a model with prunable conv/dense layers")
        self.val_samples = int(len(dataset.y_val[:max_val_samples]))
        self.keep = run_dir is not None
        self._tmp = None if self.keep else tempfile.TemporaryDirectory(prefix="edgeprune-sensitivity-")
        self.work = Path(run_dir if self.keep else self._tmp.name) / "sensitivity"
        self.model_path = save_model_file(model, self.work / "model.keras")
        self.data_path = save_arrays(dataset, self.work / "val.npz", max_train=RECALIBRATION_SAMPLES,
                                     max_val=max_val_samples)

    def run(self, cuts, *, criterion: str, executor, seed: int) -> tuple[list[dict], float]:
        """cuts: (group, ratio, trial name); returns (trial results, the unpruned model's val accuracy)."""
        index = {id(g): i for i, g in enumerate(self.groups)}
        data = load_arrays(self.data_path)
        # the criterion scores the whole model (a data criterion: forward and backward passes) the same way for
        # every cut: once here, on the trials' own data, rather than once per trial
        scores_path = self.work / f"scores-{criterion}-seed{seed}.json"
        g = self.analysis.graph
        write_json(scores_path, scores_by_channel(g, compute_scores(g, criterion, dataset=data, seed=seed)))
        jobs = [dict(model_path=str(self.model_path), data_path=str(self.data_path), scores_path=str(scores_path),
                     out_path=str(self.work / f"trial-g{index[id(g)]:03d}-{name}.json"), label=group_label(g.sources),
                     source=g.sources[0], ratio=ratio, criterion=criterion, protect=self.protect,
                     protect_first=self.protect_first, seed=seed) for g, ratio, name in cuts]
        results = (executor or get_executor()).map(sensitivity_trial, jobs, label="sensitivity scan",
                                                   describe=_describe_trial)
        return results, _accuracy(evaluate(self.model, data.x_val, data.y_val))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()
        else:  # copies of the model and data; the trial JSONs stay
            (self.work / "val.npz").unlink(missing_ok=True)
            (self.work / "model.keras").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# allocation: equal accuracy cost across groups for one overall channel target


def _drop_curve(result: SensitivityResult, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(ratios, monotone accuracy drop) with the origin (0, 0) prepended."""
    xs = np.array([0.0, *result.ratios])
    ys = np.maximum.accumulate(np.array([0.0, *result.drops(label)]))
    return xs, ys


def _ratio_within(xs: np.ndarray, ys: np.ndarray, tau: float) -> float:
    """Largest ratio whose (interpolated) drop is at most `tau`."""
    for i in range(1, len(xs)):
        if ys[i] > tau:
            return float(xs[i - 1] + (tau - ys[i - 1]) / (ys[i] - ys[i - 1]) * (xs[i] - xs[i - 1]))
    return float(xs[-1])


def sensitivity_allocation(result: SensitivityResult, target_ratio: float) -> dict[str, float]:
    """group label -> ratio; channel-weighted mean equals `target_ratio`, fragile groups get less.

    Every group is pruned up to the same accuracy drop τ (read off its curve); τ is found by
    bisection and the last step is interpolated so the overall channel count is met exactly.
    Beyond the largest scanned ratio the curves say nothing: such targets fall back to uniform.
    """
    if not 0.0 <= target_ratio < 1.0:
        raise EdgepruneError(f"target ratio {target_ratio} is out of range", "use a fraction in [0, 1)")
    labels = list(result.curves)
    if target_ratio == 0.0 or target_ratio >= max(result.ratios):
        return {label: float(target_ratio) for label in labels}
    weights = np.array([float(result.groups.get(label, {}).get("channels", 1)) for label in labels])
    curves = [_drop_curve(result, label) for label in labels]

    def ratios_at(tau: float) -> np.ndarray:
        return np.array([_ratio_within(xs, ys, tau) for xs, ys in curves])

    def total(r: np.ndarray) -> float:
        return float((r * weights).sum() / weights.sum())

    lo, hi = 0.0, max(float(ys[-1]) for _, ys in curves) + 1e-9
    r_lo, r_hi = ratios_at(lo), ratios_at(hi)
    if total(r_lo) >= target_ratio:  # even "no accuracy lost" leaves room: scale those ratios down
        return {label: round(float(r) * target_ratio / total(r_lo), 6) for label, r in zip(labels, r_lo)}
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        r_mid = ratios_at(mid)
        if total(r_mid) < target_ratio:
            lo, r_lo = mid, r_mid
        else:
            hi, r_hi = mid, r_mid
    t_lo, t_hi = total(r_lo), total(r_hi)
    lam = 0.0 if t_hi == t_lo else (target_ratio - t_lo) / (t_hi - t_lo)
    r = r_lo + lam * (r_hi - r_lo)
    return {label: round(float(v), 6) for label, v in zip(labels, r)}


def sensitivity_overrides(result: SensitivityResult, target_ratio: float) -> dict[str, float]:
    """``{regex of a group's first source layer: ratio}`` for ``prune(..., overrides=...)``."""
    alloc = sensitivity_allocation(result, target_ratio)
    out = {}
    for label, r in alloc.items():
        sources = result.groups.get(label, {}).get("sources") or label.split("+")
        out[re.escape(sources[0])] = r
    return out
