"""Benchmark one .tflite/.onnx/.ort file on the machine this script runs on; write the result as JSON.

This file is copied to the target device (host, QEMU guest, Raspberry Pi) and run there with the
device's own Python, so it imports only the standard library, numpy and the interpreter, and stays
Python 3.9 compatible.  It is never imported by edgeprune itself.

    python runner.py MODEL --runs N --warmup W --threads T [--eval data.npz]
                     [--interpreter auto|ai_edge_litert|tflite_runtime|onnxruntime] --out result.json
    python runner.py MODEL1 MODEL2 ... --runs N ... --out results.json   # {"batch": [result, ...]}

Several models in one process (the per-layer profiler's isolated ops) save a Python start per
model, which under emulation is most of the time; they run one after another, in argument order.

Each timed invocation is bracketed by marker syscalls (see ``_marker``) so that a QEMU
instruction-counting plugin can count exactly the work of one inference.  Warm-up and accuracy
passes carry no markers.

What a counted inference executes depends on everything the process did before it (Python's
specialising interpreter warms up per call site, the heap's layout follows every allocation), so
the timed inferences are made independent of the arguments: they always use the same seeded
random input (eval data is read and scored only after them), warm-up goes through the very loop
the timed runs use (with inert marker values), and the cyclic GC is off while they run.

Exit codes: 0 ok; 2 bad arguments or unreadable input; 3 no TFLite interpreter; 4 no onnxruntime;
5 no numpy.  On failure the last stderr line is ``EDGEPRUNE_RUNNER_ERROR <code> <message>``.
"""
import argparse
import gc
import json
import os
import platform
import sys
import time

SCHEMA_VERSION = 1
MARK_START = 4242
MARK_END = 4243
MARK_IDLE = 4240  # same syscall, same EINVAL path, but no counter region: warm-up runs the timed loop with it

EXIT_USAGE = 2
EXIT_NO_TFLITE = 3
EXIT_NO_ONNXRUNTIME = 4
EXIT_NO_NUMPY = 5
ERROR_TAG = "EDGEPRUNE_RUNNER_ERROR"


def _fail(code, message):
    sys.stderr.write("%s %d %s\n" % (ERROR_TAG, code, message))
    sys.exit(code)


try:
    import numpy as np
except ImportError as _e:  # a bare board, or a numpy whose shared libraries are missing
    _why = [ln.strip() for ln in str(_e).splitlines() if "Original error was" in ln] or [str(_e).strip()]
    _fail(EXIT_NO_NUMPY, "numpy is not importable by %s (%s)" % (sys.executable, " ".join(_why[-1].split())[:300]))


def _marker(value):
    """Issue a syscall a QEMU plugin can see; it fails harmlessly (EINVAL) everywhere."""
    try:
        os.sched_get_priority_max(value)
    except OSError:
        pass


def _dist_version(dist_name, module):
    try:
        # slow to import (~50 ms natively, far more emulated) and only a TFLite runtime's version needs it
        from importlib.metadata import version

        return version(dist_name)
    except Exception:
        return getattr(module, "__version__", "unknown")


# --- quantization helpers -------------------------------------------------------------------------

def quantize_input(x, dtype, scale, zero_point):
    """float32 → the input tensor's dtype, using its scale/zero-point when it is quantized."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype)
    if scale:
        x = np.round(x / scale + zero_point)
    info = np.iinfo(dtype)
    return np.clip(x, info.min, info.max).astype(dtype)


def dequantize_output(y, scale, zero_point):
    if y.dtype.kind in "iu" and scale:
        return (y.astype(np.float32) - zero_point) * np.float32(scale)
    return y.astype(np.float32)


# --- interpreters ---------------------------------------------------------------------------------

class TFLiteModel(object):
    def __init__(self, path, threads, which):
        interpreter_cls, self.name, self.version = self._import(which)
        t0 = time.perf_counter_ns()
        self.interpreter = interpreter_cls(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.init_ns = time.perf_counter_ns() - t0
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]

    @staticmethod
    def _import(which):
        errors = []
        if which in ("auto", "ai_edge_litert"):
            try:
                # a device has one interpreter or another: each is tried where it is chosen
                import ai_edge_litert
                from ai_edge_litert.interpreter import Interpreter

                return Interpreter, "ai_edge_litert", _dist_version("ai-edge-litert", ai_edge_litert)
            except ImportError as e:
                errors.append("ai_edge_litert: %s" % e)
        if which in ("auto", "tflite_runtime"):
            try:
                # a device has one interpreter or another: each is tried where it is chosen
                import tflite_runtime
                from tflite_runtime.interpreter import Interpreter

                return Interpreter, "tflite_runtime", _dist_version("tflite-runtime", tflite_runtime)
            except ImportError as e:
                errors.append("tflite_runtime: %s" % e)
        _fail(EXIT_NO_TFLITE, "no TFLite interpreter importable (%s)" % "; ".join(errors))

    def input_specs(self):
        specs = []
        for d in self.inputs:
            scale, zp = d.get("quantization", (0.0, 0))
            specs.append((tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp)))
        return specs

    def set_inputs(self, arrays):
        for d, a in zip(self.inputs, arrays):
            self.interpreter.set_tensor(d["index"], a)

    def invoke(self):
        self.interpreter.invoke()

    def output_float(self):
        y = self.interpreter.get_tensor(self.output["index"])
        scale, zp = self.output.get("quantization", (0.0, 0))
        return dequantize_output(y, float(scale), int(zp))


_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


class ONNXModel(object):
    def __init__(self, path, threads, which):
        try:
            # only ONNX models need onnxruntime, which a device may not have
            import onnxruntime as ort
        except ImportError as e:
            _fail(EXIT_NO_ONNXRUNTIME, "onnxruntime is not importable (%s)" % e)
        self.name, self.version = "onnxruntime", ort.__version__
        t0 = time.perf_counter_ns()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Repeatable work per run: no worker spinning, one fixed execution order and optimisation level.
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.init_ns = time.perf_counter_ns() - t0
        self.inputs = self.session.get_inputs()
        self.feed = {}
        self.result = None

    def input_specs(self):
        specs = []
        for i in self.inputs:
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in i.shape)
            specs.append((shape, np.dtype(_ORT_DTYPES.get(i.type, np.float32)), 0.0, 0))
        return specs

    def set_inputs(self, arrays):
        self.feed = {i.name: a for i, a in zip(self.inputs, arrays)}

    def invoke(self):
        self.result = self.session.run(None, self.feed)

    def output_float(self):
        return np.asarray(self.result[0]).astype(np.float32)


# The harness names the interpreter (from the export target's registration and the device
# profile); "auto" falls back to the file suffix.
MODEL_CLASSES = {"ai_edge_litert": TFLiteModel, "tflite_runtime": TFLiteModel, "onnxruntime": ONNXModel}
AUTO_BY_SUFFIX = {".tflite": TFLiteModel, ".onnx": ONNXModel, ".ort": ONNXModel}  # .ort: ONNX Runtime Mobile format


def load_model(path, threads, which):
    cls = MODEL_CLASSES.get(which) or AUTO_BY_SUFFIX.get(os.path.splitext(path)[1].lower())
    if cls is None:
        _fail(EXIT_USAGE, "unsupported model file %s (expected %s)" % (path, " or ".join(AUTO_BY_SUFFIX)))
    return cls(path, threads, which)


# --- inputs ---------------------------------------------------------------------------------------

def random_input(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -128), min(info.max, 255) + 1, size=shape).astype(dtype)


def sample_input(x, spec):
    """One eval sample shaped and typed for the model's (batch-1) input tensor."""
    shape, dtype, scale, zp = spec
    x = np.asarray(x, dtype=np.float32)
    if x.size != int(np.prod(shape)):
        _fail(EXIT_USAGE, "eval sample shape %s does not fit the model input %s" % (list(x.shape), list(shape)))
    x = x.reshape(shape)
    return quantize_input(x, dtype, scale, zp)


def load_eval(path):
    try:
        with np.load(path) as data:
            x, y = np.asarray(data["x"], dtype=np.float32), np.asarray(data["y"]).astype(np.int64)
    except (OSError, KeyError, ValueError) as e:
        _fail(EXIT_USAGE, "cannot read eval data %s: %s (need arrays x and y)" % (path, e))
    if len(x) != len(y):
        _fail(EXIT_USAGE, "eval data %s: x has %d rows, y has %d" % (path, len(x), len(y)))
    return x, y  # no rows: no accuracy pass (emulated boards always pass a file, so argv never varies)


# --- measurement ----------------------------------------------------------------------------------

def peak_rss():
    """(bytes, source).  /proc VmHWM first: ru_maxrss survives execve on Linux, so a runner started
    from a big parent (a Python with TensorFlow loaded) would report the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        # POSIX only (absent on Windows, answered below)
        import resource
    except ImportError:  # Windows
        return None, None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (int(rss) if sys.platform == "darwin" else int(rss) * 1024), "ru_maxrss"  # Linux: kB


def latency_summary(ns):
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return {
        "p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "min": float(ms.min()),
        "max": float(ms.max()), "std": float(ms.std()),
    }


def evaluate(model, x, y):
    """Accuracy and argmax predictions, one sample per invocation (the deployed batch size)."""
    spec = model.input_specs()[0]
    preds = np.empty(len(x), dtype=np.int64)
    for i in range(len(x)):
        model.set_inputs([sample_input(x[i], spec)])
        model.invoke()
        preds[i] = int(np.argmax(model.output_float().reshape(-1)))
    return float(np.mean(preds == y)), preds


def timed_loop(invoke, warmup, runs):
    """``warmup`` + ``runs`` invocations through one loop, each between two markers and timed; the
    warm-up ones carry the inert MARK_IDLE, so the timed runs find every call site of this loop
    exactly as warm whatever came before.  Returns the timed runs' nanoseconds."""
    times = np.zeros(warmup + runs, dtype=np.int64)  # preallocated: the loop keeps no new objects alive
    for i in range(warmup + runs):
        start, end = (MARK_IDLE, MARK_IDLE) if i < warmup else (MARK_START, MARK_END)
        t0 = time.perf_counter_ns()
        _marker(start)
        invoke()
        _marker(end)
        times[i] = time.perf_counter_ns() - t0
    return [int(t) for t in times[warmup:]]


def run(args):
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        _fail(EXIT_USAGE, "need --runs >= 1, --warmup >= 0, --threads >= 1")
    if not os.path.isfile(args.model):
        _fail(EXIT_USAGE, "model file not found: %s" % args.model)
    if args.eval and not os.path.isfile(args.eval):
        _fail(EXIT_USAGE, "cannot read eval data %s: no such file" % args.eval)
    model = load_model(args.model, args.threads, args.interpreter)
    specs = model.input_specs()
    if args.eval and len(specs) != 1:
        _fail(EXIT_USAGE, "--eval needs a single-input model; this one has %d inputs" % len(specs))
    # The same input with or without eval data: what an inference executes may depend on the values.
    model.set_inputs([random_input(s[0], s[1], seed=i) for i, s in enumerate(specs)])
    t0 = time.perf_counter_ns()
    model.invoke()
    first_ns = time.perf_counter_ns() - t0
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside a counted inference would depend on all earlier allocations
    try:
        times = timed_loop(model.invoke, args.warmup, args.runs)
    finally:
        if gc_was_enabled:
            gc.enable()
    timing_output = model.output_float().reshape(-1)

    result = {
        "schema_version": SCHEMA_VERSION,
        "model": os.path.basename(args.model),
        "format": os.path.splitext(args.model)[1].lower().lstrip("."),
        "interpreter": {"name": model.name, "version": model.version},
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "init_ms": model.init_ns / 1e6,
        "first_inference_ms": first_ns / 1e6,
        "latency_ms": latency_summary(times),
        "latencies_ms": [t / 1e6 for t in times],
        "inputs": [
            {"shape": list(s[0]), "dtype": s[1].name, "scale": s[2], "zero_point": s[3]} for s in specs
        ],
        "timing_input": "random",
        "timing_output": [float(v) for v in timing_output[:1000]],
        "accuracy": None,
        "eval_samples": None,
        "predictions": None,
    }
    eval_x, eval_y = load_eval(args.eval) if args.eval else (None, None)
    if eval_x is not None and len(eval_x):
        accuracy, preds = evaluate(model, eval_x, eval_y)
        result.update(accuracy=accuracy, eval_samples=int(len(eval_y)), predictions=preds.tolist())
    result["peak_rss_bytes"], result["peak_rss_source"] = peak_rss()
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark a .tflite/.onnx model on this machine.")
    p.add_argument("model", nargs="+")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval", default=None, help=".npz with x (float32, NHWC) and y (int labels)")
    p.add_argument("--interpreter", default="auto",
                   choices=["auto", "ai_edge_litert", "tflite_runtime", "onnxruntime"])
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    models = args.model
    if len(models) > 1 and args.eval:
        _fail(EXIT_USAGE, "--eval takes a single model")
    results = []
    for path in models:
        args.model = path
        results.append(run(args))
    with open(args.out, "w") as f:
        json.dump(results[0] if len(models) == 1 else {"schema_version": SCHEMA_VERSION, "batch": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
