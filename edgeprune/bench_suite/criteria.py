"""Importance criteria side by side: prune a trained model at several ratios, fine-tune, measure.

``python -m edgeprune.bench_suite.criteria`` trains each reference model through the product's train
step (which reuses a model trained with the same settings from its cache), then runs one
trial per (model, criterion, ratio) through edgeprune's executor: structured pruning with that
criterion, fine-tuning with the unpruned model as distillation teacher, and the Keras accuracy on
the full test split before and after fine-tuning.  Results go to ``<out>/<date>-criteria.json`` and
a Markdown table (``bench/CRITERIA.md`` by default).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
from pathlib import Path

from edgeprune.bench_suite.trials import write_recipe
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor
from edgeprune.recipe.schema import load_recipe

DEFAULT_CRITERIA = ("l1", "bn_gamma", "taylor", "apoz", "random")  # bn_gamma: n/a without BatchNormalization
DEFAULT_RATIOS = (0.3, 0.5, 0.7)
ROUND_TO = 4


def criteria_trial(baseline: str, recipe: str, out: str, criterion: str, ratio: float, finetune_epochs: int,
                   learning_rate: float, batch_size: int, round_to: int, seed: int) -> dict:
    """One (criterion, ratio) on the trained `baseline` model file; writes and returns its JSON."""
    # TensorFlow loads in the trial's own process (a Ray worker, or here when in-process), not at bench start
    from edgeprune.keras import keras
    from edgeprune.modelio import load_model
    from edgeprune.pruning import model_stats, prune
    from edgeprune.recipe.runner import recipe_dataset
    from edgeprune.strategies.trialio import write_json
    from edgeprune.train import evaluate, fit

    r = load_recipe(recipe)
    model, dataset = r.model, r.dataset.name
    path = Path(out) / f"{criterion}-{round(ratio * 100)}.json"
    ds = recipe_dataset(r)
    keras.backend.clear_session()
    teacher = load_model(baseline)
    t0 = time.perf_counter()
    # data-driven criteria (taylor, activations) score on real validation batches
    try:
        pruned, plan = prune(teacher, ratio, criterion=criterion, round_to=round_to, seed=seed, dataset=ds)
    except EdgepruneError as err:  # e.g. bn_gamma on a model without BatchNormalization
        result = {"model": model, "dataset": dataset, "criterion": criterion, "ratio": ratio,
                  "not_applicable": err.problem, "test_samples": int(len(ds.y_test))}
        return write_json(path, result)
    before = evaluate(pruned, ds.x_test, ds.y_test)
    fit(pruned, ds, epochs=finetune_epochs, learning_rate=learning_rate, batch_size=batch_size,
        teacher=teacher, patience=None, seed=seed)
    after = evaluate(pruned, ds.x_test, ds.y_test)
    stats, base_stats = model_stats(pruned), model_stats(teacher)
    result = {"model": model, "dataset": dataset, "criterion": criterion, "ratio": ratio,
              "finetune_epochs": finetune_epochs, "distillation": True,
              "baseline_accuracy": evaluate(teacher, ds.x_test, ds.y_test),
              "accuracy_pruned": before, "accuracy_finetuned": after,
              "params": stats["params"], "macs": stats["macs"],
              "params_removed": 1 - stats["params"] / base_stats["params"],
              "macs_removed": 1 - stats["macs"] / base_stats["macs"],
              "test_samples": int(len(ds.y_test)), "seconds": time.perf_counter() - t0}
    return write_json(path, result)


def train_baseline(work: Path, model: str, dataset: str, s: dict) -> tuple[Path, Path]:
    """The baseline through the product's train step (a one-step recipe; the step caches trained models).

    Returns (trained model file, recipe path)."""
    # the recipe runner loads TensorFlow: only when a baseline is trained, after the arguments are checked
    from edgeprune.recipe.runner import run_recipe

    gdir = Path(work) / f"{model}-{dataset}"
    ds = {"name": dataset, "val_fraction": 0.1, **({"max_train_samples": s["max_train"]} if s["max_train"] else {}),
          **({"test_samples": s["max_test"]} if s["max_test"] else {})}
    recipe = write_recipe({"name": f"criteria-{model}-{dataset}", "seed": s["seed"], "model": model, "dataset": ds,
                           "steps": [{"train": {"epochs": s["epochs"], "batch_size": s["batch_size"],
                                                "learning_rate": s["learning_rate"], "patience": 0}}]},
                          gdir / "train.recipe.yaml")
    run_dir = run_recipe(recipe, out_dir=gdir / "train", overwrite=True, log=lambda m: None)
    return run_dir / "models" / "baseline.keras", recipe


def markdown_table(results: list[dict]) -> str:
    """Rows (model, criterion), columns ratio: fine-tuned accuracy (and before fine-tuning)."""
    ratios = sorted({r["ratio"] for r in results})
    lines = ["| model | baseline | criterion | " + " | ".join(f"{round(r * 100)}% channels" for r in ratios) + " |",
             "|---|---:|---|" + "---:|" * len(ratios)]
    keyed = {(r["model"], r["dataset"], r["criterion"], r["ratio"]): r for r in results}
    for model, dataset in dict.fromkeys((r["model"], r["dataset"]) for r in results):
        crits = list(dict.fromkeys(r["criterion"] for r in results if r["model"] == model and r["dataset"] == dataset))
        for c in crits:
            cells, base = [], None
            for ratio in ratios:
                r = keyed.get((model, dataset, c, ratio))
                if r is None or "not_applicable" in r:
                    cells.append("—" if r is None else f"n/a: {r['not_applicable']}")
                    continue
                base = r["baseline_accuracy"]
                cells.append(f"{r['accuracy_finetuned'] * 100:.2f} ({r['accuracy_pruned'] * 100:.1f}) "
                             f"−{r['macs_removed'] * 100:.0f}% MACs")
            base_cell = "—" if base is None else f"{base * 100:.2f}"
            lines.append(f"| {model}/{dataset} | {base_cell} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(summary: dict, path: Path) -> Path:
    s = summary["settings"]
    test_sizes = ", ".join(f"{n:,}" for n in sorted({r["test_samples"] for r in summary["results"]}))
    text = "\n".join([
        "# Importance criteria compared",
        "",
        f"Generated by `{summary['command']}` on {summary['date']} ({summary['host']}). Do not edit by hand.",
        "",
        f"Each model was trained {s['epochs']} epochs, then pruned with each criterion (per-group ratio, "
        f"counts rounded to {s['round_to']}, first layer protected), fine-tuned {s['criteria_epochs']} epoch(s) "
        "with the unpruned model as distillation teacher, and evaluated in Keras on the test split "
        f"({test_sizes} images).",
        "Cells: test accuracy (%) after fine-tuning, (before fine-tuning), and the MACs removed.",
        "",
        markdown_table(summary["results"]),
        "",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_criteria(*, models, dataset: str, criteria, ratios, epochs: int, criteria_epochs: int, work: Path,
                 out: Path, markdown: Path, command: str, max_train=None, max_test=None, executor=None) -> tuple[Path, Path]:
    s = {"epochs": epochs, "criteria_epochs": criteria_epochs, "round_to": ROUND_TO, "seed": 0, "batch_size": 128,
         "learning_rate": 1e-3, "finetune_learning_rate": 5e-4, "max_train": max_train, "max_test": max_test}
    executor = executor or get_executor()
    results = []
    for model in models:
        baseline, recipe = train_baseline(work, model, dataset, s)
        jobs = [dict(baseline=str(baseline), recipe=str(recipe), out=str(Path(work) / f"{model}-{dataset}" / "criteria"),
                     criterion=c, ratio=r, finetune_epochs=criteria_epochs, learning_rate=s["finetune_learning_rate"],
                     batch_size=s["batch_size"], round_to=s["round_to"], seed=s["seed"])
                for c in criteria for r in ratios]
        print(f"[criteria] {model}/{dataset}: {len(jobs)} trials", flush=True)
        results += executor.map(criteria_trial, jobs)
    date = _dt.date.today().isoformat()
    summary = {"date": date, "command": command, "host": f"{platform.machine()}, {platform.python_version()}",
               "settings": s, "results": results}
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{date}-criteria.json"
    json_path.write_text(json.dumps(summary, indent=1))
    return json_path, write_markdown(summary, markdown)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeprune.bench_suite.criteria", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="lenet5,resnet8")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--criteria", default=",".join(DEFAULT_CRITERIA))
    p.add_argument("--ratios", default=",".join(str(r) for r in DEFAULT_RATIOS))
    p.add_argument("--epochs", type=int, default=8, help="baseline training epochs (the product's train step)")
    p.add_argument("--finetune-epochs", type=int, default=2, help="distillation fine-tuning epochs per trial")
    p.add_argument("--max-train", type=int)
    p.add_argument("--max-test", type=int)
    p.add_argument("--executor", default="inprocess", help="inprocess or ray")
    p.add_argument("--ray-address")
    p.add_argument("--work", default=f"bench/work/{_dt.date.today().isoformat()}-criteria",
                   help="baseline runs and per-trial JSON (trained baselines are reused from the train step's cache)")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--markdown", default="bench/CRITERIA.md")
    args = p.parse_args(argv)
    try:
        # pruning loads TensorFlow: only after the arguments are parsed
        from edgeprune.pruning.importance import resolve_criterion

        criteria = [c.strip() for c in args.criteria.split(",") if c.strip()]
        for c in criteria:
            resolve_criterion(c)  # a one-line error naming the known criteria, before any training
        json_path, md = run_criteria(
            models=[m.strip() for m in args.models.split(",") if m.strip()], dataset=args.dataset,
            criteria=criteria, ratios=[float(r) for r in args.ratios.split(",")], epochs=args.epochs,
            criteria_epochs=args.finetune_epochs, work=Path(args.work), out=Path(args.out),
            markdown=Path(args.markdown), max_train=args.max_train, max_test=args.max_test,
            command="python -m edgeprune.bench_suite.criteria " + " ".join(argv if argv is not None else sys.argv[1:]),
            executor=get_executor(args.executor, address=args.ray_address))
    except EdgepruneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {json_path} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
