"""`edgeprune run` end to end on a small real Fashion-MNIST slice: every step, caching, run-dir safety."""
import json
import shutil
from pathlib import Path

import pytest

from edgeprune.errors import EdgepruneError
from edgeprune.recipe import run_recipe

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "tiny_recipe.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_recipe(TINY, out_dir=out, log=lambda *a: None)
    return out


@pytest.mark.slow
def test_run_writes_measured_artifacts(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    assert set(m["stages"]) == {"baseline", "pruned", "finetuned", "qat"}
    base, pruned = m["stages"]["baseline"], m["stages"]["pruned"]
    assert pruned["macs"] < base["macs"] and pruned["params"] < base["params"]
    for stage in m["stages"].values():
        assert 0.0 < stage["test_accuracy"] <= 1.0
        assert stage["file_bytes"] == (tiny_run / stage["model_path"]).stat().st_size
    assert m["stages"]["finetuned"]["val_accuracy"] > pruned["val_accuracy"] - 0.02
    exports = {(e["stage"], e["format"], e["quant"]) for e in m["exports"]}
    assert {("baseline", "tflite", "none"), ("finetuned", "onnx", "none"), ("qat", "tflite", "int8")} <= exports
    for e in m["exports"]:
        assert e["file_bytes"] == (tiny_run / e["path"]).stat().st_size
        if e["quant"] == "none":
            assert e["max_abs_diff"] <= 1e-4
    int8 = next(e for e in m["exports"] if e["stage"] == "qat" and e["format"] == "tflite")
    assert int8["top1_agreement"] >= 0.97
    assert int8["file_bytes"] < 0.1 * next(e["file_bytes"] for e in m["exports"] if e["stage"] == "baseline")
    for b in m["benchmarks"]:
        assert b["device"] == "host" and b["latency_ms"]["p50"] > 0 and 0.0 < b["accuracy"] <= 1.0
    assert (tiny_run / "recipe.lock.yaml").exists() and (tiny_run / "plan.json").exists()
    assert m["steps"][1]["equivalence_max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_rerun_reuses_cached_steps(tiny_run):
    run_recipe(TINY, out_dir=tiny_run, log=lambda *a: None)
    m = json.loads((tiny_run / "metrics.json").read_text())
    statuses = {s["name"]: s["status"] for s in m["steps"]}
    assert all(statuses[k] == "cached" for k in ("train", "prune", "finetune", "quantize", "export", "benchmark"))


@pytest.mark.slow
def test_other_recipe_never_overwrites_silently(tiny_run, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("ratio: 0.5", "ratio: 0.3"))
    before = (tiny_run / "metrics.json").read_text()
    with pytest.raises(EdgepruneError, match="different recipe"):
        run_recipe(other, out_dir=tiny_run, log=lambda *a: None)
    assert (tiny_run / "metrics.json").read_text() == before


@pytest.mark.slow
def test_keras3_user_model_comes_back_as_keras3(tmp_path):
    """A user's Keras 3 .keras goes through prune → export and the pruned file loads in Keras 3."""
    import subprocess
    import sys

    from edgeprune import zoo
    from edgeprune.modelio import save_model

    src = tmp_path / "user.keras"
    save_model(zoo.build("dscnn"), src, flavor="keras3")
    recipe = tmp_path / "user.yaml"
    recipe.write_text(f"name: user\nmodel: {src}\ndataset: {{max_train_samples: 1000, test_samples: 200}}\n"
                      "steps:\n  - prune: {ratio: 0.5}\n  - finetune: {epochs: 1}\n")
    out = run_recipe(recipe, out_dir=tmp_path / "run", log=lambda *a: None)
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None); import keras; "
            f"m = keras.saving.load_model(r'{out / 'models/finetuned.keras'}'); print(m.count_params())")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert int(res.stdout.strip().splitlines()[-1]) > 0
