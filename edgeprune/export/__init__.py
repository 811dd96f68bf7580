"""Export to TFLite / ONNX and check every exported file against the Keras model.

Every format is a registered export target (``edgeprune.export.targets``: get_target,
target_for_file); the target modules import TensorFlow, LiteRT and onnxruntime lazily:
``edgeprune.export.tflite``, ``edgeprune.export.onnx``, ``edgeprune.export.runtime`` (predict on
the host), ``edgeprune.export.parity`` (check_parity, assert_parity), ``edgeprune.export.cli``.
"""
