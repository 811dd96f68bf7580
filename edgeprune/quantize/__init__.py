"""Quantization: quantization-aware training (tfmot) and post-training quantization settings.

Submodules import TensorFlow lazily; import what you need from them:
``edgeprune.quantize.qat`` (quantize_qat, save_qat, load_qat, qat_scope, is_qat_model),
``edgeprune.quantize.ptq`` (TFLite converter settings per quant mode),
``edgeprune.quantize.onnx_ptq`` (onnxruntime static QDQ quantization of a float ONNX file),
``edgeprune.quantize.selective`` (mixed TFLite: int8 with chosen layers kept float).
"""

TFLITE_QUANT_MODES = ("none", "int8", "fp16", "dynamic", "mixed")
ONNX_QUANT_MODES = ("none", "int8")
QAT_SCHEMES = ("default", "prune_preserve")

__all__ = ["TFLITE_QUANT_MODES", "ONNX_QUANT_MODES", "QAT_SCHEMES"]
