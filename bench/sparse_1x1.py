"""Does XNNPACK's sparse 1x1 path engage on the emulated Pi 4 / Pi 5 (issue 20, item 4)?

Builds MobileNetV2 (alpha 0.35, 96x96x3, 10 classes, weights=None, seed 0), zeroes the smallest
|w| of every 1x1 Conv2D kernel to a given fraction (unstructured, per layer, numpy; no training:
the question is cost only), and converts each variant to .tflite twice: dense (plain converter) and
with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (weights stored sparse + DENSIFY ops).  float16
variants likewise when the converter accepts sparsity with fp16.  Each file is then measured with
edgeprune's own harness (``run_on_device``: the runner under qemu-user, instructions per inference
counted between markers, estimated board time) on ``qemu-aarch64`` (Cortex-A72) and
``qemu-aarch64-a76`` (Cortex-A76), and on the host (x86, LiteRT, wall-clock) as a control.
Two architectures (--arch): ``keras`` (keras.applications as is: TF SAME padding at stride 2) and ``sym`` (the same
layers and weights with explicit symmetric padding 1 on the stem and the stride-2 depthwise convs, which XNNPACK's
NCHW/sparse rewrite accepts).  See bench/SPARSE_1X1.md.

Run (from the repository root, heavy: minutes per file per board):
    nice -n 15 .venv/bin/python bench/sparse_1x1.py WORK_DIR [--sparsity 0.7 0.8 0.9] \
        [--devices qemu-aarch64 qemu-aarch64-a76] [--fp16] [--out bench/results/sparse-1x1.json]
Files are cached in WORK_DIR (rebuilt only when missing); results already in --out are reused
unless --remeasure is given.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- model + files
def build_model(variant: str = "keras"):
    """keras: keras.applications' MobileNetV2 as is.  sym: the same layers and weights, but the stem is
    ZeroPadding2D(1) + Conv2D(3x3, stride 2, 'valid') instead of Conv2D(3x3, stride 2, 'same'), and every
    stride-2 depthwise conv's ZeroPadding2D is ((1,1),(1,1)) instead of ((0,1),(0,1)): output shapes are
    unchanged, and this is the padding XNNPACK's NCHW rewrite accepts (a positive control)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=10)
    if variant == "keras":
        return model
    cfg = model.get_config()
    layers = cfg["layers"]
    for l in layers:
        if l["class_name"] == "ZeroPadding2D":
            l["config"]["padding"] = ((1, 1), (1, 1))
    i = next(k for k, l in enumerate(layers) if l["name"] == "Conv1")
    stem = layers[i]
    stem["config"]["padding"] = "valid"
    pad = {"module": "keras.layers", "class_name": "ZeroPadding2D",
           "config": {"name": "stem_pad", "trainable": True, "dtype": stem["config"]["dtype"],
                      "padding": ((1, 1), (1, 1)), "data_format": "channels_last"},
           "registered_name": None, "name": "stem_pad", "inbound_nodes": stem["inbound_nodes"]}
    stem["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__",
                                        "config": {"shape": [None, 98, 98, 3], "dtype": "float32",
                                                   "keras_history": ["stem_pad", 0, 0]}}], "kwargs": {}}]
    layers.insert(i, pad)
    sym = keras.Model.from_config(cfg)
    sym.set_weights(model.get_weights())
    assert sym.output_shape == model.output_shape
    return sym


def pointwise_layers(model):
    import keras

    return [l for l in model.layers if isinstance(l, keras.layers.Conv2D)
            and not isinstance(l, keras.layers.DepthwiseConv2D) and tuple(l.kernel_size) == (1, 1)]


def sparsify(model, fraction: float) -> dict:
    """Zero the `fraction` smallest |w| of each 1x1 conv kernel, per layer; returns what was done."""
    done = {}
    for layer in pointwise_layers(model):
        weights = layer.get_weights()
        k = weights[0]
        n = k.size
        n_zero = int(np.ceil(fraction * n))
        order = np.argsort(np.abs(k), axis=None, kind="stable")
        flat = k.reshape(-1).copy()
        flat[order[:n_zero]] = 0.0
        weights[0] = flat.reshape(k.shape)
        layer.set_weights(weights)
        done[layer.name] = round(float(np.mean(weights[0] == 0)), 4)
    return done


def convert(model, sparse: bool, fp16: bool) -> tuple[bytes, str]:
    """(flatbuffer, converter's log lines) for one variant."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    opts = []
    if sparse:
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if fp16:
        opts.append(tf.lite.Optimize.DEFAULT)
        conv.target_spec.supported_types = [tf.float16]
    conv.optimizations = opts
    err = io.StringIO()
    # the MLIR converter logs to fd 2 from C++: capture it through a temp file
    import tempfile

    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stderr(err):
                data = conv.convert()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        log = tmp.read().decode(errors="replace") + err.getvalue()
    keep = [ln for ln in log.splitlines() if any(w in ln.lower() for w in ("spars", "warn", "densif", "error"))]
    return data, "\n".join(keep[-40:])


def inspect_file(path: Path) -> dict:
    """Bytes, op histogram and the tensors stored sparse (their `sparsity` field)."""
    from edgeprune.profiling.tflite_ops import opcode_name, read_model

    m = read_model(path.read_bytes())
    sg = m.subgraphs[0]
    ops: dict[str, int] = {}
    for op in sg.operators:
        name = opcode_name(m, op)
        ops[name] = ops.get(name, 0) + 1
    sparse_t = [t for t in sg.tensors if t.sparsity is not None]
    stored_nnz = 0
    for t in sparse_t:
        buf = m.buffers[t.buffer].data
        stored_nnz += 0 if buf is None else len(buf) // (2 if t.type == 1 else 4)
    return {"bytes": path.stat().st_size, "ops": ops, "sparse_tensors": len(sparse_t),
            "sparse_tensor_types": sorted({int(t.type) for t in sparse_t}),
            "sparse_values_stored": stored_nnz}


def make_files(work: Path, fractions: list[float], fp16: bool, archs: list[str]) -> tuple[list[dict], dict]:
    work.mkdir(parents=True, exist_ok=True)
    variants, logs = [], {}
    for arch in archs:
        stem = "mnv2" if arch == "keras" else f"mnv2{arch}"
        for frac in [0.0] + fractions:
            model = None
            tag = f"{stem}_s{int(round(frac * 100)):02d}"
            for prec in (["float32", "float16"] if fp16 else ["float32"]):
                for sparse in ([False, True] if frac > 0 else [False]):
                    name = f"{tag}_{prec}_{'sparse' if sparse else 'dense'}.tflite"
                    path = work / name
                    entry = {"file": name, "arch": arch, "sparsity": frac, "precision": prec,
                             "stored": "sparse" if sparse else "dense"}
                    if not path.exists():
                        if model is None:
                            model = build_model(arch)
                            done = sparsify(model, frac) if frac > 0 else {}
                            (work / f"layers_{tag}.json").write_text(json.dumps(done, indent=1))
                        t0 = time.time()
                        try:
                            data, log = convert(model, sparse, prec == "float16")
                        except Exception as e:  # e.g. sparsity refused with fp16
                            entry["convert_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                            variants.append(entry)
                            continue
                        path.write_bytes(data)
                        logs[name] = log
                        print(f"wrote {name} ({len(data):,} bytes, {time.time() - t0:.0f} s)", flush=True)
                    entry.update(inspect_file(path))
                    variants.append(entry)
    return variants, logs


# ---------------------------------------------------------------- measuring
def host_control(path: Path, reps: int = 200) -> dict:
    """LiteRT on this x86 host, default delegate: median wall-clock per invoke (a control only)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)
    it.set_tensor(inp["index"], x)
    for _ in range(20):
        it.invoke()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        it.invoke()
        ts.append(time.perf_counter_ns() - t0)
    out = it.get_tensor(it.get_output_details()[0]["index"]).copy()
    return {"host_ms_p50": round(float(np.median(ts)) / 1e6, 4), "output": out.reshape(-1)[:10].tolist()}


def board_run(device: str, path: Path) -> dict:
    from edgeprune.harness.backends import run_on_device
    from edgeprune.harness.profiles import get_profile

    t0 = time.time()
    r = run_on_device(get_profile(device), path, eval_npz=None, runs=3, warmup=20)
    return {"instructions_per_inference": r.get("instructions_per_inference"),
            "instructions_all": r.get("instructions_all"),
            "board_time_ms": r.get("board_time_ms"),
            "interpreter": r.get("interpreter"),
            "cpu": r.get("cpu"), "emulator_wall_s": round(time.time() - t0, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    ap.add_argument("--devices", nargs="*", default=["qemu-aarch64", "qemu-aarch64-a76"])
    ap.add_argument("--fp16", action="store_true", help="also float16 variants")
    ap.add_argument("--arch", nargs="+", default=["keras", "sym"], choices=["keras", "sym"],
                    help="keras: keras.applications MobileNetV2; sym: same with symmetric explicit padding")
    ap.add_argument("--only", nargs="*", default=None, help="measure only files whose name contains one of these")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/sparse-1x1.json")
    ap.add_argument("--remeasure", action="store_true")
    a = ap.parse_args(argv)

    variants, logs = make_files(a.work, a.sparsity, a.fp16, a.arch)
    old = json.loads(a.out.read_text()) if a.out.exists() else {}
    prior = {(r["file"]): r for r in old.get("files", [])}
    for v in variants:
        if "convert_error" in v:
            continue
        p = prior.get(v["file"], {})
        v["measured"] = {} if a.remeasure else dict(p.get("measured", {}))
        path = a.work / v["file"]
        if "host" not in v["measured"]:
            v["measured"]["host"] = host_control(path)
        if a.only is not None and not any(s in v["file"] for s in a.only):
            continue
        for dev in a.devices:
            if dev in v["measured"] and v["measured"][dev].get("instructions_per_inference"):
                continue
            print(f"measuring {v['file']} on {dev} ...", flush=True)
            try:
                v["measured"][dev] = board_run(dev, path)
            except Exception as e:
                v["measured"][dev] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
            m = v["measured"][dev]
            print(f"  {m.get('instructions_per_inference')} instructions, {m.get('board_time_ms')} ms est., "
                  f"{m.get('emulator_wall_s')} s", flush=True)
            write(a.out, variants, {**old.get("converter_log_lines_mentioning_sparsity_or_warnings", {}), **logs})
    write(a.out, variants, {**old.get("converter_log_lines_mentioning_sparsity_or_warnings", {}), **logs})
    print(f"wrote {a.out}")


def write(out: Path, variants: list[dict], logs: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"question": "does XNNPACK's sparse 1x1 path engage on the emulated A72/A76 (issue 20 item 4)",
           "model": "keras.applications.MobileNetV2(alpha=0.35, input_shape=(96,96,3), weights=None, classes=10), "
                    "seed 0; 1x1 Conv2D kernels zeroed by magnitude per layer; arch 'sym' = same layers with "
                    "explicit symmetric padding 1 on the stem and the stride-2 depthwise convs",
           "measured_with": "edgeprune.harness.backends.run_on_device (qemu-user, instructions counted between "
                            "the runner's markers, estimated board time); host = LiteRT on x86, wall-clock",
           "converter_log_lines_mentioning_sparsity_or_warnings": logs,
           "files": variants}
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
