"""``edgeprune search``: prune until a measured budget is met (registered in edgeprune/cli.py).

Nothing heavy at module top: TensorFlow loads inside the command, after the budget and paths are checked.
(Moved from ``edgeprune.strategies.cli``.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from edgeprune.budget import Budget, budget_help
from edgeprune.criterion_names import criterion_help
from edgeprune.data import load_dataset
from edgeprune.data.check import check_fits
from edgeprune.devicecost import SEARCH_KEYS
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.tables import fmt_points


def search_cmd(
    model: Annotated[str, typer.Argument(help="Trained model file (.keras/.h5, Keras 3 or tf-keras).")],
    budget: Annotated[str, typer.Option(help="Limits KEY=VALUE, all to be met (comma-separated: latency_ms=2,size_kb=40). " + budget_help(SEARCH_KEYS) + ".")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile measured on (see `edgeprune devices`).")] = "host",
    max_drop: Annotated[float, typer.Option(help="Allowed validation-accuracy loss in points.")] = 0.5,
    data: Annotated[Optional[str], typer.Option(help="Dataset the model was trained on: a name or a path (its validation split decides; test is never used). Required. A :raw or :symmetric suffix (e.g. my.npz:raw) changes how uint8 pixels are scaled (default :unit, pixel/255 in [0, 1]); float data are used as stored.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory: search/ trials, sensitivity.json, best model.")] = Path("runs/search"),
    criterion: Annotated[str, typer.Option(help=criterion_help("the validation split of --data"))] = "l1",
    ratios: Annotated[str, typer.Option(help="Comma-separated global ratios tried first (then bisection).")] = "0.2,0.4,0.6,0.8",
    quant: Annotated[str, typer.Option(help="Export quantization for size/latency: none, int8, fp16, dynamic.")] = "none",
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs per candidate.")] = 1,
    round_to: Annotated[Optional[int], typer.Option(help="Channel multiple (default: the device profile's).")] = None,
    no_sensitivity: Annotated[bool, typer.Option("--no-sensitivity", help="Uniform ratios instead of the sensitivity allocation.")] = False,
    runs: Annotated[int, typer.Option(help="Timed inferences per latency measurement.")] = 50,
    executor: Annotated[str, typer.Option(help="Trial executor: inprocess or ray.")] = "inprocess",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address (default: a local instance).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data split, fine-tuning and random criteria.")] = 0,
) -> None:
    """Search pruning ratios for the most accurate model that meets a budget measured on a device."""
    try:
        ratio_list = [float(r) for r in ratios.split(",") if r.strip()]
    except ValueError:
        raise EdgepruneError(f"bad --ratios '{ratios}'", "pass comma-separated fractions, e.g. 0.2,0.4,0.6") from None
    limits = Budget.parse(budget).require(SEARCH_KEYS, "search")  # fail on a typo before loading TensorFlow
    if not Path(model).exists():
        raise EdgepruneError(f"model file {model} does not exist",
                             "search a trained model file (e.g. models/finetuned.keras of a run; zoo models are untrained)")
    trial_executor = get_executor(executor, address=ray_address)  # an unreachable cluster fails before any work
    if not data:
        raise EdgepruneError("search needs --data: the dataset the model was trained on (candidates are fine-tuned "
                             "and scored on its validation split)", "e.g. --data fashion_mnist, or --data my.npz")
    # deferred: TensorFlow loads only once the budget, the model path, the executor and --data are checked
    from edgeprune.devicecost.search import budget_search
    from edgeprune.modelio import read_model, save_model
    from edgeprune.strategies.trialio import load_model_file
    from edgeprune.zoo import MODELS

    if model in MODELS and not Path(model).exists():
        raise EdgepruneError(f"'{model}' is an untrained zoo model", "search a trained model file (e.g. models/finetuned.keras of a run)")
    loaded = read_model(Path(model))
    dataset = load_dataset(data, seed=seed)
    check_fits(loaded.model, dataset, "search")
    result = budget_search(loaded.model, dataset, device=device, budget=limits, max_drop=max_drop, run_dir=out,
                           executor=trial_executor, criterion=criterion, round_to=round_to,
                           ratios=ratio_list, use_sensitivity=not no_sensitivity, quant=quant,
                           finetune_epochs=finetune_epochs, runs=runs, seed=seed)
    console = Console()
    wanted = limits.describe()
    for t in result.trials:
        m = t["measured"]
        shown = "  ".join(f"{key} {m[key]:,.4g}" for key in limits)
        console.print(f"trial {t['index']:3d}  ratio {t['settings']['ratio']:.3f}  {shown}  "
                      f"val acc {m['val_accuracy']:.2%} ({fmt_points(-m['accuracy_drop_points'])})  "
                      f"{'meets budget' if m['meets_budget'] else 'over budget'}")
    if result.best is None:
        raise EdgepruneError(f"no candidate met {wanted} on {device} (largest ratio tried: {max(ratio_list)})",
                             "add larger --ratios, loosen the budget, or use --quant int8")
    best_out = out / f"best{Path(model).suffix if Path(model).suffix in ('.keras', '.h5') else '.keras'}"
    save_model(load_model_file(out / "search" / "best.keras"), best_out, flavor=loaded.flavor)
    b = result.best
    reached = ", ".join(f"{key} {b['measured'][key]:,.4g}" for key in limits)
    console.print(f"best: trial {b['trial']} ratio {b['settings']['ratio']:.3f}: {reached} ({wanted}), "
                  f"val acc {b['measured']['val_accuracy']:.2%} → {best_out} (summary {result.summary_path})")
    if result.status != "ok":
        raise EdgepruneError(f"the best model within {wanted} loses {b['measured']['accuracy_drop_points']:.2f} "
                             f"accuracy points (> --max-drop {max_drop:g})",
                             "fine-tune longer (--finetune-epochs), loosen the budget, or accept the drop")

