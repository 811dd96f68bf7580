"""Check an exported file against the Keras model it came from, on real inputs.

Float32 exports must match within `tolerance` (max |Δ| over all outputs); float16 files within
`FP16_RELATIVE_TOLERANCE` of the output's scale (weights rounded to 11 significant bits); quantized
exports (int8, mixed, dynamic) are judged by top-1 agreement and accuracy, because they differ by
design (~1 quantization step).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.export import runtime

DEFAULT_TOLERANCE = 1e-4
# of max(1, max |Keras output|). Measured: LeNet-style nets 3e-4 (softmax), 2e-4 × logit scale; a pruned
# ResNet-8 (Fashion-MNIST, softmax) 1.5e-2, where the Keras model with its own weights rounded to float16
# already moves 1.0e-2 (top-1 agreement 99.97%): weight rounding, not a converter fault
FP16_RELATIVE_TOLERANCE = 5e-2


def precision_tolerance(quant: str, tolerance: float, reference: np.ndarray) -> float | None:
    """The max |Δ| a file of this precision may show against the Keras model; None: not judged by |Δ|."""
    if quant in ("none", "sparse"):  # sparse: float32 weights, stored sparse and densified at load
        return float(tolerance)
    if quant == "fp16":
        return max(float(tolerance), FP16_RELATIVE_TOLERANCE * max(1.0, float(np.abs(reference).max())))
    return None


def check_parity(path, keras_model, x, y=None, *, tolerance: float = DEFAULT_TOLERANCE,
                 batch_size: int = 256) -> dict:
    """Run the exported file and the Keras model on `x`; compare outputs and (if `y`) accuracy."""
    path = Path(path)
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise EdgepruneError("parity check needs at least one sample", "pass a slice of the test split")
    fmt = runtime.file_format(path)
    quant = runtime.quant_mode(path)
    exported = runtime.predict(path, x, batch_size=batch_size)
    reference = np.asarray(keras_model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    if exported.shape != reference.shape:
        raise EdgepruneError(
            f"{path.name} outputs shape {exported.shape} but the Keras model {reference.shape}",
            "export the same model you compare against",
        )
    diff = np.abs(exported - reference)
    top_exp, top_ref = exported.argmax(-1), reference.argmax(-1)
    acc = keras_acc = None
    if y is not None:
        y = np.asarray(y).reshape(-1)
        acc, keras_acc = float(np.mean(top_exp == y)), float(np.mean(top_ref == y))
    max_abs = float(diff.max())
    limit = precision_tolerance(quant, tolerance, reference)
    return {
        "format": fmt,
        "quant": quant,
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "accuracy": acc,
        "keras_accuracy": keras_acc,
        "top1_agreement": float(np.mean(top_exp == top_ref)),
        "max_abs_diff": max_abs,
        "mean_abs_diff": float(diff.mean()),
        "samples": int(len(x)),
        "tolerance": float(tolerance) if limit is None else limit,
        "within_tolerance": None if limit is None else bool(max_abs <= limit),
    }


def assert_parity(result: dict) -> dict:
    """Raise if a float32/float16 export is over its tolerance; quantized results pass through (judge agreement)."""
    if result.get("within_tolerance") is False:
        raise EdgepruneError(
            f"export parity failed: max |Δ| = {result['max_abs_diff']:.3g} > {result['tolerance']:.0e} "
            f"between the {result.get('format', 'exported')} file and the Keras model on {result['samples']} samples",
            "the converter changed the maths: check custom layers and report it with the model file",
        )
    return result


def format_parity(result: dict) -> str:
    """One human line for reports and the CLI."""
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}%"

    verdict = {True: "ok", False: "FAILED", None: "quantized"}[result["within_tolerance"]]
    return (f"{result['format']}/{result['quant']}: {result['file_bytes']:,} bytes; "
            f"accuracy {pct(result['accuracy'])} (keras {pct(result['keras_accuracy'])}); "
            f"top-1 agreement {pct(result['top1_agreement'])}; max |Δ| {result['max_abs_diff']:.2e}, "
            f"mean |Δ| {result['mean_abs_diff']:.2e} on {result['samples']} samples "
            f"[tolerance {result['tolerance']:.0e}: {verdict}]")
