"""`edgeprune prune` on files: load (any Keras), prune, verify, save back in the user's Keras.

Loads TensorFlow on import: edgeprune/cli.py imports it inside the command, once the options are checked.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeprune.criterion_names import CRITERIA, DATA_CRITERIA, criterion_help, parse_criterion  # noqa: F401 (re-exported)
from edgeprune.data import load_dataset
from edgeprune.data.check import check_fits, check_inputs, require_single_io
from edgeprune.devicecost.prune import prune_with_options, recalibrate
from edgeprune.errors import EdgepruneError
from edgeprune.modelio import read_model, save_model
from edgeprune.prune_options import PruneOptions
from edgeprune.pruning import PrunePlan, model_stats, verify_inputs, verify_pruning
from edgeprune.strategies.features import prune_input_features


def reduction(before: int, after: int) -> str:
    """How much smaller, as the report writes it: "−73.1%" (edgeprune.report.sections)."""
    return f"−{(1 - after / before) * 100:.1f}%" if before else "−0.0%"


def _read_inputs(model_path: Path, output: Path, data: str | None, criterion: str | None = None):
    """(loaded model, dataset or None), after refusing an output name no Keras can read back.

    A model with several outputs may take --data for --verify's inputs (not for a data-driven criterion)."""
    if output.suffix not in (".keras", ".h5"):
        raise EdgepruneError(f"output {output} must end in .keras or .h5", "e.g. -o pruned.keras")
    loaded = read_model(model_path)
    dataset = None
    if data:
        dataset = load_dataset(data)
        if len(loaded.model.outputs) > 1 and criterion is not None and parse_criterion(criterion)[0] not in DATA_CRITERIA:
            check_inputs(loaded.model, dataset.x_train, f"dataset {dataset.name}", "prune --data", single_output=False)
        else:
            check_fits(loaded.model, dataset, "prune --data")
    return loaded, dataset


def prune_file(model_path: Path, output: Path, *, options: PruneOptions | None = None, data: str | None,
               plan_path: Path | None, plan_out: Path | None, verify: bool, **settings) -> dict:
    """Prune a model file by `options` (or by the :class:`PruneOptions` fields given as keywords, e.g.
    ``ratio=0.5, criterion="l1"``), verify, recalibrate BatchNorm (with `data`), and save back in the user's Keras."""
    options = options if options is not None else PruneOptions.checked(**settings)
    loaded, dataset = _read_inputs(model_path, output, data, None if options.device_cost else options.criterion)
    if verify:  # refuse before the work, not after it; several outputs are checked one by one
        require_single_io(loaded.model, "prune --verify", single_output=False)
    plan = PrunePlan.load(plan_path) if plan_path else None
    pruned, plan = prune_with_options(loaded.model, options, dataset, plan=plan)
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
    # after the equivalence check, which compares the surgery itself with the zeroed original
    result["bn_recalibrated_layers"] = recalibrate(pruned, options, dataset)
    save_model(pruned, output, flavor=loaded.flavor)
    if plan_out:
        plan.save(plan_out)
    b, a = result["before"], result["after"]
    print(f"{model_path} → {output} ({loaded.flavor}): params {b['params']:,} → {a['params']:,} "
          f"({reduction(b['params'], a['params'])}), MACs {b['macs']:,} → {a['macs']:,} ({reduction(b['macs'], a['macs'])}), "
          f"{plan.removed_channels} channels removed in {sum(1 for g in plan.groups if g['kept'] < g['channels'])} groups"
          + (f"; BatchNorm statistics recalibrated on --data in {result['bn_recalibrated_layers']} layers"
             if result["bn_recalibrated_layers"] else ""))
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
    loaded, dataset = _read_inputs(model_path, output, data)
    pruned, kept = prune_input_features(loaded.model, dataset, ratio=ratio, method=method)
    save_model(pruned, output, flavor=loaded.flavor)
    before, after = model_stats(loaded.model), model_stats(pruned)
    features_path = output.with_suffix(".features.json")
    features_path.write_text(json.dumps({"method": method, "ratio": ratio, "kept": kept}, indent=1))
    print(f"{model_path} → {output} ({loaded.flavor}): {len(kept)} input features kept ({method}), params "
          f"{before['params']:,} → {after['params']:,}; kept feature indices in {features_path}")
    return {"kept": kept, "before": before, "after": after}
