"""Export to TFLite / ONNX and check every exported file against the Keras model.

Submodules import TensorFlow, LiteRT and onnxruntime lazily:
``edgeprune.export.tflite`` (export_tflite), ``edgeprune.export.onnx`` (export_onnx), ``edgeprune.export.ort`` (export_ort: ONNX Runtime Mobile),
``edgeprune.export.runtime`` (predict with LiteRT / onnxruntime),
``edgeprune.export.parity`` (check_parity, assert_parity), ``edgeprune.export.cli`` (export_cmd).
"""

FORMATS = {"tflite": ".tflite", "onnx": ".onnx", "ort": ".ort"}

__all__ = ["FORMATS"]
