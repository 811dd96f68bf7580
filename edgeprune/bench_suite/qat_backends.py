"""`make bench-qat`: edgeprune's native Keras 3 QAT against TF-MOT's QAT, same models, data and epochs.

``recipes/bench/qat/<model>-<data>-<backend>.yaml`` come in pairs that differ only in
``quantize.backend``: the same train step (so the product's train cache gives both the same
baseline), the same QAT epochs, learning rate and batch size, then the QAT stage exported as an
int8 TFLite file and scored on the full test split.  Each recipe is a trial through the executor
(finished runs are reused, as in ``make bench``); per recipe the bench collects the Keras QAT test
accuracy, the int8 TFLite test accuracy, top-1 agreement and bytes, the QAT step's seconds and
whether the file is full int8 (every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD op with
int8 inputs).  Target: native's int8 TFLite accuracy within 0.2 points of TF-MOT's, or better.

    python -m edgeprune.bench_suite.qat_backends [--report-only JSON] [--quick] [--executor ray]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path

import yaml

from edgeprune.bench_suite.run import _environment
from edgeprune.errors import EdgepruneError
from edgeprune.recipe.lock import holds_other_recipe
from edgeprune.executor import get_executor

REPO = Path(__file__).resolve().parent.parent.parent
RECIPE_DIR = REPO / "recipes" / "bench" / "qat"
RESULTS_FILE = REPO / "bench" / "results" / "qat-backends.json"
MARKDOWN_FILE = REPO / "bench" / "QAT_BACKENDS.md"
WORK_DIR = REPO / "runs" / "bench-qat"
QUICK_RESULTS_FILE = REPO / "bench" / "results" / "qat-backends-quick.json"
QUICK_MARKDOWN_FILE = REPO / "bench" / "work" / "QAT_BACKENDS-quick.md"
QUICK_WORK_DIR = REPO / "runs" / "bench-qat-quick"
BACKENDS = ("tfmot", "native")
TARGET_PT = 0.2          # native's int8 TFLite test accuracy may be at most this many points below tfmot's
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")
# a smoke run: a few hundred images, one epoch in every step
QUICK = {"max_train_samples": 400, "test_samples": 200, "epochs": 1}


def recipe_paths(folder: Path = RECIPE_DIR) -> dict[str, dict[str, Path]]:
    """{model-data: {backend: recipe path}}, from the file names `<model>-<data>-<backend>.yaml`."""
    pairs: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        stem, _, backend = path.stem.rpartition("-")
        if backend not in BACKENDS:
            raise EdgepruneError(f"{path}: the file name must end in -tfmot or -native", "rename it")
        pairs.setdefault(stem, {})[backend] = path
    missing = [f"{k}-{b}" for k, v in pairs.items() for b in BACKENDS if b not in v]
    if missing:
        raise EdgepruneError(f"no recipe for {', '.join(missing)} in {folder}", "every model needs both backends")
    return pairs


def shrink_quick(recipe: dict) -> dict:
    """The recipe as a smoke run: a few hundred training and test images, every step one epoch."""
    out = json.loads(json.dumps(recipe))
    ds = out.setdefault("dataset", {})
    ds["max_train_samples"] = min(ds.get("max_train_samples") or QUICK["max_train_samples"], QUICK["max_train_samples"])
    ds["test_samples"] = min(ds.get("test_samples") or QUICK["test_samples"], QUICK["test_samples"])
    for step in out["steps"]:
        (kind, spec), = step.items()
        if spec is not None and "epochs" in spec:
            spec["epochs"] = QUICK["epochs"]
    return out


def float_input_ops(ops: list[dict]) -> list[str]:
    """The CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD ops (by name) of `tflite_ops`' list with an
    input that is not int8: the activations and weights (a conv's or FC's bias, its third input, is int32
    in a full-int8 file). Empty: the file is full int8."""
    bad = set()
    for op in ops:
        if op["op"] not in INT8_OPS:
            continue
        inputs = op["inputs"] if op["op"] == "ADD" else op["inputs"][:2]
        if not inputs or any(t != "int8" for t in inputs):
            bad.add(op["op"])
    return sorted(bad)


def qat_trial(recipe: str, run_dir: str, quick: bool = False, quiet: bool = False) -> dict:
    """Trial body: `edgeprune run RECIPE` into `run_dir` (a finished run there is reused), then what the
    bench compares, read from the run's metrics.json and its int8 TFLite file."""
    # a trial's own imports: an executor worker loads TensorFlow when it runs one, not when it unpickles it
    from edgeprune.bench_suite.trials import _logger, finished, write_recipe
    from edgeprune.quantize.native_qat import tflite_ops
    from edgeprune.recipe.runner import run_recipe

    src, run = Path(recipe), Path(run_dir)
    path = src
    if quick:
        path = write_recipe(shrink_quick(yaml.safe_load(src.read_text())), run.parent / f"{run.name}.recipe.yaml")
    log = _logger(run, quiet)
    if finished(run, path):
        log(f"reusing the finished run in {run}")
    else:
        # a run of an earlier version of this recipe is replaced
        run_recipe(path, out_dir=run, log=log, overwrite=holds_other_recipe(run, path))
    metrics = json.loads((run / "metrics.json").read_text())
    row = next((e for e in metrics["exports"] if e["stage"] == "qat" and e["format"] == "tflite"
                and e["quant"] == "int8"), None)
    if row is None:
        raise EdgepruneError(f"{run}/metrics.json has no int8 TFLite export of the qat stage",
                             "the recipe's export step needs stages: {qat: [int8]}")
    ops = tflite_ops((run / row["path"]).read_bytes())
    not_int8 = float_input_ops(ops)
    steps = {s["name"]: s for s in metrics["steps"]}
    lock = yaml.safe_load((run / "recipe.lock.yaml").read_text())["recipe"] if (run / "recipe.lock.yaml").exists() else {}
    quant = next((spec for step in lock.get("steps", []) for kind, spec in step.items() if kind == "quantize"), {})
    return {"recipe": metrics["run"]["name"], "recipe_path": str(src), "run_dir": str(run),
            "model": lock.get("model"), "dataset": metrics["dataset"]["name"],
            "train_images": metrics["dataset"].get("train"), "test_images": row.get("samples"),
            "backend": quant.get("backend", "tfmot"), "qat_epochs": quant.get("epochs"),
            "qat_learning_rate": quant.get("learning_rate"),
            "baseline_test_accuracy": metrics["stages"]["baseline"]["test_accuracy"],
            "baseline_reused_from": steps.get("train", {}).get("reused_from"),
            "qat_keras_test_accuracy": metrics["stages"]["qat"]["test_accuracy"],
            "tflite_int8_test_accuracy": row["accuracy"], "top1_agreement": row.get("top1_agreement"),
            "file_bytes": row["file_bytes"], "tflite_path": str(run / row["path"]),
            "full_int8": not not_int8, "float_input_ops": not_int8,
            "int8_op_counts": {k: sum(op["op"] == k for op in ops) for k in INT8_OPS},
            "qat_seconds": steps.get("quantize", {}).get("seconds"),
            "train_seconds": steps.get("train", {}).get("seconds"),
            "run_seconds": metrics["run"].get("seconds")}


def compare(trials: list[dict]) -> list[dict]:
    """One row per model: tfmot vs native, the difference in points (native - tfmot) and the verdict."""
    by = {}
    for t in trials:
        key = Path(t["recipe_path"]).stem.rpartition("-")[0]
        by.setdefault(key, {})[t["backend"]] = t
    rows = []
    for key, pair in by.items():
        if set(pair) != set(BACKENDS):
            raise EdgepruneError(f"{key}: results for {', '.join(sorted(pair))} only", "run both backends")
        diff_pt = (pair["native"]["tflite_int8_test_accuracy"] - pair["tfmot"]["tflite_int8_test_accuracy"]) * 100
        rows.append({"name": key, "tfmot": pair["tfmot"], "native": pair["native"], "diff_pt": round(diff_pt, 4),
                     "accuracy_met": diff_pt >= -TARGET_PT - 1e-9,
                     "met": diff_pt >= -TARGET_PT - 1e-9 and pair["native"]["full_int8"]})
    return rows


def run_bench(pairs: dict[str, dict[str, Path]], work: Path, executor, quick: bool = False, quiet: bool = False,
              log=print) -> dict:
    started = time.perf_counter()
    jobs = [{"recipe": str(p), "run_dir": str(Path(work) / p.stem), "quick": quick, "quiet": quiet}
            for key in sorted(pairs) for p in (pairs[key][b] for b in BACKENDS)]
    log(f"bench-qat: {len(jobs)} recipes{' (quick)' if quick else ''}; executor {executor.describe()['kind']}; "
        f"work in {work}")
    trials = executor.map(qat_trial, jobs, label="bench-qat",
                          describe=lambda r, _: f"{r['recipe']}: int8 TFLite {r['tflite_int8_test_accuracy']:.2%}")
    return {"date": _dt.date.today().isoformat(), "quick": quick, "target_pt": TARGET_PT,
            "environment": _environment(), "executor": executor.describe(), "work_dir": str(work),
            "seconds": round(time.perf_counter() - started, 1), "trials": trials}


def _pct(x) -> str:
    return "–" if x is None else f"{x:.2%}"


def _secs(x) -> str:
    return "–" if x is None else f"{x:.0f} s"


def render_markdown(result: dict) -> str:
    rows = compare(result["trials"])
    env = result.get("environment", {})
    lines = ["# QAT backends: edgeprune native (Keras 3) vs TF-MOT", "",
             "Generated by `make bench-qat` (`python -m edgeprune.bench_suite.qat_backends`) from "
             "`recipes/bench/qat/`" + (" — **quick smoke run, not a result**" if result.get("quick") else "") + ". "
             "Each pair of recipes differs only in `quantize.backend`: the same trained baseline (the train "
             "step's cache), the same QAT epochs, learning rate and batch size, then the QAT stage exported as an "
             "int8 TFLite file and scored on the test split. Target: native's int8 TFLite test accuracy at most "
             f"{result['target_pt']:g} points below TF-MOT's (or better), and the file full int8 (every CONV_2D, "
             "DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD op with int8 inputs).", ""]
    for r in rows:
        t, n = r["tfmot"], r["native"]
        lines += [f"## {r['name']}", "",
                  f"{t.get('model')} on {t['dataset']}: {t.get('train_images')} training images, "
                  f"{t.get('test_images')} test images; baseline (float32 Keras) test accuracy "
                  f"{_pct(t['baseline_test_accuracy'])}; QAT {t.get('qat_epochs')} epoch(s) at learning rate "
                  f"{t.get('qat_learning_rate')}.", "",
                  "| | tfmot | native |", "|---|---|---|",
                  f"| Keras QAT test accuracy | {_pct(t['qat_keras_test_accuracy'])} | {_pct(n['qat_keras_test_accuracy'])} |",
                  f"| int8 TFLite test accuracy | {_pct(t['tflite_int8_test_accuracy'])} | "
                  f"{_pct(n['tflite_int8_test_accuracy'])} |",
                  f"| TFLite / Keras top-1 agreement | {_pct(t['top1_agreement'])} | {_pct(n['top1_agreement'])} |",
                  f"| file bytes | {t['file_bytes']:,} | {n['file_bytes']:,} |",
                  f"| full int8 | {'yes' if t['full_int8'] else 'no (' + ', '.join(t['float_input_ops']) + ')'} | "
                  f"{'yes' if n['full_int8'] else 'no (' + ', '.join(n['float_input_ops']) + ')'} |",
                  f"| QAT step | {_secs(t['qat_seconds'])} | {_secs(n['qat_seconds'])} |", "",
                  f"Native − tfmot: **{r['diff_pt']:+.2f} pt** (int8 TFLite test accuracy). Target "
                  f"(≥ −{result['target_pt']:g} pt and full int8): **{'met' if r['met'] else 'missed'}**.", ""]
    lines += ["## Summary", "", "| model | tfmot int8 | native int8 | native − tfmot | native full int8 | target |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {_pct(r['tfmot']['tflite_int8_test_accuracy'])} | "
                     f"{_pct(r['native']['tflite_int8_test_accuracy'])} | {r['diff_pt']:+.2f} pt | "
                     f"{'yes' if r['native']['full_int8'] else 'no'} | {'met' if r['met'] else 'missed'} |")
    env_text = ", ".join(f"{k} {env[k]}" for k in ("python", "tensorflow", "keras", "tf_keras", "tfmot",
                                                    "ai_edge_litert", "host_cpu", "cpu_count") if env.get(k) is not None)
    lines += ["", f"Run on {result['date']}; the whole bench took {result['seconds'] / 60:.1f} min "
                  f"(executor {result.get('executor', {}).get('kind', 'inprocess')}). Environment: {env_text}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeprune.bench_suite.qat_backends", description=__doc__.split("\n")[0])
    p.add_argument("--report-only", metavar="JSON", help="rewrite the Markdown from this results JSON")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: a few hundred images, one epoch per step, separate folder and results")
    p.add_argument("--recipes", default=str(RECIPE_DIR))
    p.add_argument("--out", help=f"results JSON (default {RESULTS_FILE.relative_to(REPO)})")
    p.add_argument("--markdown", help=f"Markdown (default {MARKDOWN_FILE.relative_to(REPO)})")
    p.add_argument("--executor", default="inprocess", choices=["inprocess", "ray"])
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out or (QUICK_RESULTS_FILE if args.quick else RESULTS_FILE))
    markdown = Path(args.markdown or (QUICK_MARKDOWN_FILE if args.quick else MARKDOWN_FILE))
    if args.report_only:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(render_markdown(json.loads(Path(args.report_only).read_text())))
        print(f"wrote {markdown}")
        return 0
    result = run_bench(recipe_paths(Path(args.recipes)), QUICK_WORK_DIR if args.quick else WORK_DIR,
                       get_executor(args.executor), quick=args.quick, quiet=args.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(render_markdown(result))
    for r in compare(result["trials"]):
        print(f"{r['name']}: tfmot {r['tfmot']['tflite_int8_test_accuracy']:.2%}, native "
              f"{r['native']['tflite_int8_test_accuracy']:.2%} ({r['diff_pt']:+.2f} pt), native full int8 "
              f"{r['native']['full_int8']}: {'met' if r['met'] else 'missed'}")
    print(f"wrote {out} and {markdown}")
    return 0 if all(r["met"] for r in compare(result["trials"])) else 1


if __name__ == "__main__":
    sys.exit(main())
