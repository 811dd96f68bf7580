"""The modules that must stay light load no TensorFlow as they are imported (nor does listing the export
targets, as plan validation does), and the CLI loads none of Ray, matplotlib, onnx or scikit-learn."""
import json
import subprocess
import sys

LIGHT = ["edgeprune", "edgeprune.recipe.schema", "edgeprune.recipe.plan_check", "edgeprune.recipe.steps",
         "edgeprune.budget", "edgeprune.prune_options", "edgeprune.devicecost", "edgeprune.report",
         "edgeprune.rundir", "edgeprune.harness.backends", "edgeprune.harness.profiles", "edgeprune.harness.bench",
         "edgeprune.export.targets", "edgeprune.data.sources", "edgeprune.criterion_names"]
TENSORFLOW = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization", "tf2onnx")
CLI_NEVER = ("ray", "matplotlib", "onnx", "onnxruntime", "sklearn", "ai_edge_litert")

# one fresh interpreter: the CLI first (what it loads), then every light module and all of edgeprune.report.*
CHECK = r"""
import importlib, json, pkgutil, sys
loaded = lambda names: sorted(m for m in sys.modules if m.split(".")[0] in names)
import edgeprune.cli
out = {"cli": loaded(CLI_NEVER + TENSORFLOW)}
import edgeprune.report
report = [m.name for m in pkgutil.walk_packages(edgeprune.report.__path__, "edgeprune.report.")]
for name in LIGHT + report:
    importlib.import_module(name)
importlib.import_module("edgeprune.export.targets").target_names()
out["light"] = loaded(TENSORFLOW)
out["report"] = report
print(json.dumps(out))
"""


def test_light_modules_load_no_tensorflow():
    code = f"LIGHT = {LIGHT!r}\nTENSORFLOW = {TENSORFLOW!r}\nCLI_NEVER = {CLI_NEVER!r}\n" + CHECK
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["cli"] == [], f"importing edgeprune.cli loads {out['cli']}"
    assert out["light"] == [], f"the light modules load {out['light']}"
    assert "edgeprune.report.build" in out["report"]
