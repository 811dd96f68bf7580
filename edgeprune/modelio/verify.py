"""Check a written model the way its user will: load it with plain Keras in a clean process.

The child process imports only Keras (Keras 3 with ``TF_USE_LEGACY_KERAS`` unset, or ``tf_keras``),
never edgeprune, and passes no custom objects: if the file needs anything of ours, it fails there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError

_CHILD = r"""
import json, os, sys
import numpy as np
if sys.argv[1] == "keras3":
    import keras
    load = keras.saving.load_model
else:
    import tf_keras as keras
    load = keras.models.load_model
jobs = json.loads(open(sys.argv[2]).read())
report = {"keras_version": keras.__version__, "results": {}}
for job in jobs:
    model = load(job["model"], compile=False)
    inputs = np.load(job["inputs"])
    x = [inputs[k] for k in sorted(inputs.files)]
    y = model(x if len(x) > 1 else x[0], training=False)
    y = y if isinstance(y, (list, tuple)) else [y]
    np.savez(job["outputs"], *[np.asarray(t) for t in y])
    report["results"][job["model"]] = type(model).__name__
assert "edgeprune" not in sys.modules, "the clean process imported edgeprune"
print(json.dumps(report))
"""


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def predict_in_clean_keras(flavor: str, jobs: list[tuple[Path, object]], timeout: float = 600):
    """Load each model file with plain Keras of ``flavor`` ("keras3" | "tf_keras") in one fresh
    process and run it on its inputs.  ``jobs``: [(model_path, inputs)], inputs an array or a list
    of arrays.  Returns (keras_version, [list of output arrays per job])."""
    with tempfile.TemporaryDirectory(prefix="edgeprune-verify-") as tmp:
        tmp = Path(tmp)
        spec = []
        for i, (model_path, inputs) in enumerate(jobs):
            arrays = {f"x{j:02d}": np.asarray(a) for j, a in enumerate(_as_list(inputs))}
            np.savez(tmp / f"in{i}.npz", **arrays)
            spec.append({"model": str(Path(model_path).resolve()), "inputs": str(tmp / f"in{i}.npz"),
                         "outputs": str(tmp / f"out{i}.npz")})
        (tmp / "jobs.json").write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "PYTHONPATH")}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        proc = subprocess.run([sys.executable, "-c", _CHILD, flavor, str(tmp / "jobs.json")], cwd=tmp,
                              env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise EdgepruneError(f"plain {flavor} could not load the written model: {tail[:300]}",
                                 "report this model; the translation missed something")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        outputs = []
        for job in spec:
            with np.load(job["outputs"]) as z:
                outputs.append([z[k] for k in sorted(z.files, key=lambda n: int(n.split("_")[1]))])
        return report["keras_version"], outputs
