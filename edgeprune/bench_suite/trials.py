"""Trials: functions of (input files, settings) that write their files and result JSON into a run dir.

`pretrain_trial` writes the shared dense model; `variant_trial` reads it, runs one recipe, exports
the .tflite file(s) and measures what does not need timing (test accuracy of the exported file,
bytes, gzip bytes, params, MACs, sparsity). Latency is measured later, interleaved across variants.
"""
from __future__ import annotations

import functools
import gzip
import json
import time
from pathlib import Path

import numpy as np

from edgeprune.bench_suite.settings import BenchSettings

PRETRAINED = "pretrained.h5"


def group_dir(work_dir: Path | str, model: str, dataset: str) -> Path:
    return Path(work_dir) / f"{model}-{dataset}"


def variant_ids(s: BenchSettings) -> list[str]:
    """Trial names in run order; `dense` yields the baseline and ptq-int8 files."""
    return (["dense"] + [f"tfmot-{round(p * 100)}" for p in s.tfmot_sparsities] + ["tfmot-2:4"]
            + [f"edgeprune-{round(r * 100)}" for r in s.edgeprune_ratios])


def file_stem(variant: str) -> str:
    return variant.replace(":", "x")


@functools.lru_cache(maxsize=4)
def _dataset(name: str, max_train, max_val, max_test, seed: int):
    from edgeprune.data import load_dataset

    return load_dataset(name, seed=seed).subset(train=max_train, val=max_val, test=max_test)


def dataset_for(name: str, s: BenchSettings):
    return _dataset(name, s.max_train, s.max_val, s.max_test, s.seed)


def gzip_bytes(path: Path) -> int:
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def file_accuracy(path: Path, dataset) -> float:
    """Top-1 accuracy of the exported file on the whole (possibly sliced) test split."""
    from edgeprune.export.runtime import predict

    probs = predict(path, dataset.x_test, batch_size=256)
    return float(np.mean(np.argmax(probs, axis=-1) == dataset.y_test))


def _write_json(path: Path, data: dict) -> Path:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def _measure_file(variant: str, path: Path, keras_model, dataset, info: dict) -> dict:
    from edgeprune.bench_suite.recipes import weight_sparsity
    from edgeprune.pruning import model_stats

    stats = model_stats(keras_model)
    sparsity = weight_sparsity(keras_model)
    return {
        "variant": variant, "file": path.name, "file_bytes": path.stat().st_size, "gzip_bytes": gzip_bytes(path),
        "params": stats["params"], "macs": stats["macs"],
        "nonzero_params": int(round(stats["params"] - sparsity * _kernel_params(keras_model))),
        "weight_sparsity": sparsity, "test_accuracy": file_accuracy(path, dataset),
        "test_samples": int(len(dataset.y_test)), **info,
    }


def _kernel_params(model) -> int:
    return int(sum(np.prod(l.kernel.shape) for l in model.layers
                   if type(l).__name__ in ("Conv2D", "Dense") and getattr(l, "kernel", None) is not None))


def pretrain_trial(run_dir: str, model: str, dataset: str, settings: dict) -> str:
    """Train the dense starting point every variant shares; writes pretrained.h5 and pretrain.json."""
    s = BenchSettings(**settings)
    out = group_dir(run_dir, model, dataset)
    out.mkdir(parents=True, exist_ok=True)
    from edgeprune.bench_suite.recipes import pretrain
    from edgeprune.train import evaluate

    ds = dataset_for(dataset, s)
    _fresh_session()
    t0 = time.perf_counter()
    m = pretrain(model, ds, s)
    m.save(out / PRETRAINED, save_format="h5", include_optimizer=False)
    _write_json(out / "pretrain.json", {"model": model, "dataset": dataset, "epochs": s.epochs,
                                        "train_samples": int(len(ds.x_train)),
                                        "num_classes": int(ds.num_classes),
                                        "val_accuracy": evaluate(m, ds.x_val, ds.y_val),
                                        "seconds": time.perf_counter() - t0})
    return str(out / PRETRAINED)


def _fresh_session():
    """Drop graphs left by earlier trials in this process (a full run does dozens)."""
    from edgeprune.keras import keras

    keras.backend.clear_session()


def _load_pretrained(out: Path):
    from edgeprune.modelio import load_model

    return load_model(out / PRETRAINED)


def variant_trial(run_dir: str, model: str, dataset: str, variant: str, settings: dict) -> list[str]:
    """Run one recipe on the pretrained model; export, measure, write `<variant>.json`. Returns JSON paths."""
    from edgeprune.bench_suite import recipes
    from edgeprune.export.tflite import export_tflite

    s = BenchSettings(**settings)
    out = group_dir(run_dir, model, dataset)
    ds = dataset_for(dataset, s)
    calib = ds.calibration_samples(s.calibration_samples, seed=s.seed)
    _fresh_session()
    base = _load_pretrained(out)
    t0 = time.perf_counter()
    produced: list[tuple[str, Path, object, dict]] = []
    if variant == "dense":
        dense, info = recipes.dense_finetune(base, ds, s)
        produced.append(("baseline", export_tflite(dense, out / "baseline.tflite", quant="none"), dense,
                         {**info, "quant": "float32"}))
        produced.append(("ptq-int8", export_tflite(dense, out / "ptq-int8.tflite", quant="int8", calibration=calib),
                         dense, {**info, "quant": "PTQ int8 (full integer)"}))
    elif variant.startswith("tfmot-") and variant != "tfmot-2:4":
        sparsity = int(variant.split("-")[1]) / 100
        stripped, info = recipes.tfmot_magnitude(base, ds, s, sparsity)
        path = export_tflite(stripped, out / f"{file_stem(variant)}.tflite", quant="int8", calibration=calib)
        produced.append((variant, path, stripped, {**info, "quant": "PTQ int8 (full integer)"}))
    elif variant == "tfmot-2:4":
        stripped, qat, info = recipes.tfmot_2by4_pqat(base, ds, s)
        path = export_tflite(qat, out / f"{file_stem(variant)}.tflite")
        produced.append((variant, path, stripped, {**info, "quant": "QAT int8 (prune-preserving)"}))
    elif variant.startswith("edgeprune-"):
        ratio = int(variant.split("-")[1]) / 100
        pruned, qat, info = recipes.edgeprune_structured(base, ds, s, ratio)
        path = export_tflite(qat, out / f"{file_stem(variant)}.tflite")
        produced.append((variant, path, pruned, {**info, "quant": "QAT int8"}))
    else:
        raise ValueError(f"unknown variant {variant}")
    seconds = time.perf_counter() - t0
    written = []
    for name, path, keras_model, info in produced:
        result = _measure_file(name, path, keras_model, ds, {**info, "train_seconds": seconds,
                                                             "total_epochs": s.total_epochs})
        written.append(str(_write_json(out / f"{file_stem(name)}.json", result)))
    return written


def run_trials(fn, kwargs_list: list[dict]) -> list:
    """The one place trials are dispatched: edgeprune's executor when present, else a plain loop."""
    try:
        from edgeprune.executor import get_executor
    except ImportError:
        return [fn(**kw) for kw in kwargs_list]
    return list(get_executor().map(fn, kwargs_list))
