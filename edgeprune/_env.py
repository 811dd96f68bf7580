"""Process set-up that must happen before TensorFlow is imported.

tensorflow-model-optimization only works with Keras 2 (tf-keras); `TF_USE_LEGACY_KERAS=1` makes
`tf.keras` resolve to tf-keras.  Internally edgeprune builds every model with `tf_keras`; models
arriving from Keras 3 are carried across by :mod:`edgeprune.modelio`.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # edge tool: never grab a GPU by accident
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
