"""`edgeprune prune` on files: load (any Keras), prune, verify, save back in the user's Keras."""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import EdgepruneError

from edgeprune.criterion_names import CRITERIA, DATA_CRITERIA, parse_criterion  # no TensorFlow: --help stays fast


def criterion_help(needs: str = "data") -> str:
    """The --criterion help text: every registered criterion, and which of them need `needs`."""
    return (f"Importance criterion: {', '.join(CRITERIA)}, or threshold_<base>[:k=K] (a group's outliers first); "
            f"{', '.join(DATA_CRITERIA)} need {needs}.")


def reduction(before: int, after: int) -> str:
    """How much smaller, as the report writes it: "−73.1%" (edgeprune.report.sections)."""
    return f"−{(1 - after / before) * 100:.1f}%" if before else "−0.0%"


def _read_inputs(model_path: Path, output: Path, data: str | None, criterion: str | None = None):
    """(loaded model, dataset or None), after refusing an output name no Keras can read back.

    A model with several outputs may take --data for --verify's inputs (not for a data-driven criterion)."""
    from edgeprune.modelio import read_model

    if output.suffix not in (".keras", ".h5"):
        raise EdgepruneError(f"output {output} must end in .keras or .h5", "e.g. -o pruned.keras")
    loaded = read_model(model_path)
    dataset = None
    if data:
        from edgeprune.data import load_dataset
        from edgeprune.data.check import check_fits

        dataset = load_dataset(data)
        if len(loaded.model.outputs) > 1 and criterion is not None and parse_criterion(criterion)[0] not in DATA_CRITERIA:
            from edgeprune.data.check import check_inputs

            check_inputs(loaded.model, dataset.x_train, f"dataset {dataset.name}", "prune --data", single_output=False)
        else:
            check_fits(loaded.model, dataset, "prune --data")
    return loaded, dataset


def prune_file(model_path: Path, output: Path, *, ratio: float, criterion: str, global_pruning: bool, round_to: int,
               min_channels: int, protect: list[str], protect_first: bool | None, data: str | None,
               plan_path: Path | None, plan_out: Path | None, verify: bool, strict: bool = False,
               device_cost: dict | None = None) -> dict:
    import sys

    from edgeprune.modelio import save_model
    from edgeprune.pruning import PrunePlan, model_stats, prune, verify_inputs, verify_pruning

    loaded, dataset = _read_inputs(model_path, output, data, None if device_cost else criterion)
    if verify:  # refuse before the work, not after it; several outputs are checked one by one
        from edgeprune.data.check import require_single_io

        require_single_io(loaded.model, "prune --verify", single_output=False)
    plan = PrunePlan.load(plan_path) if plan_path else None
    if device_cost:  # channels per group from the device's measured per-op cost (edgeprune.profiling)
        from edgeprune.profiling.cli import allocate_for_cli

        plan = allocate_for_cli(loaded.model, dataset, criterion=criterion, protect=protect, min_channels=min_channels,
                                protect_first=protect_first, **device_cost)
    pruned, plan = prune(loaded.model, ratio, criterion=criterion, global_pruning=global_pruning, round_to=round_to,
                         min_channels=min_channels, protect=protect, protect_first=protect_first, dataset=dataset,
                         plan=plan, strict=strict)
    first_layer = plan.settings.get("first_layer")  # what the default (protect_first unset) did about it
    if first_layer and not any(n["kind"] == "protect_first" for n in plan.kept):  # else the warning says it
        print(f"note: {first_layer['message']}", file=sys.stderr)
    for note in plan.kept:
        print(f"warning: {note['message']}", file=sys.stderr)
    result = {"before": model_stats(loaded.model), "after": model_stats(pruned), "kept": plan.kept}
    if verify:
        x, described = verify_inputs(loaded.model, dataset, data)
        summary = verify_pruning(loaded.model, pruned, plan, x, inputs=described)
        result["verify"] = summary
        result["equivalence_max_abs_diff"] = summary["output_max_abs_diff"]
    save_model(pruned, output, flavor=loaded.flavor)
    if plan_out:
        plan.save(plan_out)
    b, a = result["before"], result["after"]
    print(f"{model_path} → {output} ({loaded.flavor}): params {b['params']:,} → {a['params']:,} "
          f"({reduction(b['params'], a['params'])}), MACs {b['macs']:,} → {a['macs']:,} ({reduction(b['macs'], a['macs'])}), "
          f"{plan.removed_channels} channels removed in {sum(1 for g in plan.groups if g['kept'] < g['channels'])} groups")
    if verify:
        v = result["verify"]
        outputs = v.get("outputs") or []
        worst = (f" (the worst of {len(outputs)} outputs, each checked against its own scale: "
                 f"'{v['worst_output']}')" if len(outputs) > 1 else "")
        print(f"equivalence with the zeroed original on {v['samples']} {v['inputs']}: {v['compared']} differ by "
              f"{v['relative_diff']:.1e} of their scale {v['output_scale']:.1e} (≤ {v['rtol']:g}){worst}; "
              f"final outputs max |Δ| = {v['output_max_abs_diff']:.2e}{'; weak check' if v['weak'] else ''}")
        if v["weak"]:
            print(f"warning: {v['note']}", file=sys.stderr)
    return result


def prune_features_file(model_path: Path, output: Path, *, ratio: float, method: str, data: str | None) -> dict:
    """Drop the weakest input features of a Dense-first model; the kept ones go to OUTPUT.features.json."""
    import json

    from edgeprune.modelio import save_model
    from edgeprune.pruning import model_stats
    from edgeprune.strategies.features import prune_input_features

    loaded, dataset = _read_inputs(model_path, output, data)
    pruned, kept = prune_input_features(loaded.model, dataset, ratio=ratio, method=method)
    save_model(pruned, output, flavor=loaded.flavor)
    before, after = model_stats(loaded.model), model_stats(pruned)
    features_path = output.with_suffix(".features.json")
    features_path.write_text(json.dumps({"method": method, "ratio": ratio, "kept": kept}, indent=1))
    print(f"{model_path} → {output} ({loaded.flavor}): {len(kept)} input features kept ({method}), params "
          f"{before['params']:,} → {after['params']:,}; kept feature indices in {features_path}")
    return {"kept": kept, "before": before, "after": after}
