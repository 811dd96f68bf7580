"""Static int8 quantization of a float ONNX file with onnxruntime (QDQ, U8S8, per-channel).

U8S8 (uint8 activations, int8 weights) is the combination onnxruntime's x86/ARM kernels run
fastest; S8S8 ran slower than float on the development CPU.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError


class _Reader:
    """onnxruntime CalibrationDataReader over an in-memory array, one sample per batch."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self.input_name = input_name
        self.samples = samples
        self.i = 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        s = self.samples[self.i:self.i + 1].astype(np.float32)
        self.i += 1
        return {self.input_name: s}

    def rewind(self):
        self.i = 0


def quantize_onnx_static(float_path, out_path, calibration: np.ndarray, *, per_channel: bool = True) -> Path:
    """Write a QDQ int8 copy of the float ONNX model at `float_path` to `out_path` (not atomic itself)."""
    # onnx and onnxruntime load only when a file is quantized: plan validation imports it (through export.onnx)
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Subclassing keeps onnxruntime's isinstance check happy.
    reader_cls = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    float_path, out_path = Path(float_path), Path(out_path)
    input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="edgeprune-ortq-") as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        try:
            quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=False)
        except Exception:  # symbolic shape inference fails on some graphs; ONNX shape inference suffices
            quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=True)
        try:
            quantize_static(
                str(prepped), str(out_path),
                reader_cls(input_name, np.asarray(calibration, np.float32)),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise EdgepruneError(f"onnxruntime static quantization failed: {first}",
                                 "check the calibration data matches the model input") from err
    return out_path
