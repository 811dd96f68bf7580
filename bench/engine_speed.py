"""Engine speed: `edgeprune prune --ratio 0.5 --global --verify` on Keras Applications (weights=None).

Two measurements per model, each in a fresh process so the import cost is real:
  1. the CLI end to end (wall and CPU time of the child process);
  2. the same steps called one by one, with wall and CPU time per stage:
     import, read+convert, prune, verify, save.

The model files are Keras 3 `.keras` files written beforehand (not timed).  The machine may be
shared: CPU time is the steadier number.  Run: `make bench-engine` (or
`python bench/engine_speed.py [--models mobilenetv2 densenet121] [--size 96]`).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS_S = {"mobilenetv2": 6.0, "densenet121": 12.0}  # issue 21's targets, wall time of the CLI
APPS = {"mobilenetv2": "MobileNetV2", "densenet121": "DenseNet121"}

_WRITE = r"""
import sys, keras
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keras.utils.set_random_seed(0)
model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
model.save(path)
"""

_STAGES = r"""
import json, sys, time
t = {}
w0, c0 = time.perf_counter(), time.process_time()
def mark(stage):
    global w0, c0
    w, c = time.perf_counter(), time.process_time()
    t[stage] = {"wall_s": round(w - w0, 3), "cpu_s": round(c - c0, 3)}
    w0, c0 = w, c
from edgeprune.modelio import read_model, save_model
from edgeprune.pruning import prune, model_stats
mark("import")
src, out = sys.argv[1], sys.argv[2]
loaded = read_model(src)
mark("read+convert")
pruned, plan = prune(loaded.model, 0.5, global_pruning=True)
stats = (model_stats(loaded.model), model_stats(pruned))
mark("prune")
try:
    from edgeprune.pruning import verify_inputs, verify_pruning
    x, described = verify_inputs(loaded.model)
    passed = verify_pruning(loaded.model, pruned, plan, x, inputs=described)["passed"]
except ImportError:  # an engine before the logits check (for a baseline run)
    import numpy as np
    from edgeprune.pruning import verify_equivalence
    x = np.random.default_rng(0).random((16, *loaded.model.input_shape[1:])).astype("float32")
    passed = verify_equivalence(loaded.model, pruned, plan, x) <= 1e-4
mark("verify")
save_model(pruned, out, flavor=loaded.flavor)
mark("save")
print(json.dumps({"stages": t, "macs_before": stats[0]["macs"], "macs_after": stats[1]["macs"],
                  "verify_passed": bool(passed)}))
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd, env) -> tuple[subprocess.CompletedProcess, float, float]:
    cpu0, w0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - w0, _child_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc, wall, cpu


def bench(name: str, size: int, tmp: Path, env: dict) -> dict:
    src = tmp / f"{name}.keras"
    _run([sys.executable, "-c", _WRITE, APPS[name], str(size), str(src)], env)
    _, cli_wall, cli_cpu = _run([sys.executable, "-m", "edgeprune", "prune", str(src), "--ratio", "0.5", "--global",
                                 "--verify", "-o", str(tmp / f"{name}-cli.keras")], env)
    proc, stage_wall, stage_cpu = _run([sys.executable, "-c", _STAGES, str(src), str(tmp / f"{name}-stages.keras")], env)
    staged = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"model": name, "input": f"{size}x{size}", "target_wall_s": TARGETS_S.get(name),
            "cli": {"wall_s": round(cli_wall, 2), "cpu_s": round(cli_cpu, 2)},
            "staged_process": {"wall_s": round(stage_wall, 2), "cpu_s": round(stage_cpu, 2)}, **staged}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(APPS), choices=list(APPS))
    ap.add_argument("--size", type=int, default=96, help="input height/width (default 96)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1],
                    help="edgeprune checkout to measure (default: this one; another gives a baseline)")
    args = ap.parse_args(argv)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(args.tree.resolve()))
    results = []
    with tempfile.TemporaryDirectory(prefix="edgeprune-engine-") as tmp:
        for name in args.models:
            r = bench(name, args.size, Path(tmp), env)
            results.append(r)
            stages = ", ".join(f"{k} {v['wall_s']:.1f} s ({v['cpu_s']:.1f} CPU)" for k, v in r["stages"].items())
            print(f"{name} {r['input']}: CLI {r['cli']['wall_s']:.1f} s wall, {r['cli']['cpu_s']:.1f} s CPU "
                  f"(target ≤ {r['target_wall_s']:g} s wall); stages: {stages}; "
                  f"MACs {r['macs_before']:,} → {r['macs_after']:,}; verify passed: {r['verify_passed']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
