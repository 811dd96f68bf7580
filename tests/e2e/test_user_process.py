"""Importing edgeprune (and using its tfmot QAT) leaves the user's process on Keras 3."""
import os
import subprocess
import sys

USER_SESSION = r"""
import os, sys
import edgeprune
from edgeprune.quantize.qat import quantize_qat
from edgeprune.keras import keras as tfk
import tensorflow as tf
import keras

out = sys.argv[1]
for name, k in (("tf_keras_api", tf.keras), ("keras", keras)):
    m = k.Sequential([k.Input((4,)), k.layers.Dense(2)])
    assert type(m).__module__.startswith("keras."), (name, type(m).__module__)
    m.save(os.path.join(out, name + ".keras"))
    assert type(keras.models.load_model(os.path.join(out, name + ".keras"))).__module__.startswith("keras.")
# edgeprune's own QAT imports tfmot, which sets TF_USE_LEGACY_KERAS as it loads: the user's Keras stays
quantize_qat(tfk.Sequential([tfk.Input((4,)), tfk.layers.Dense(2)]))
assert "TF_USE_LEGACY_KERAS" not in os.environ, os.environ["TF_USE_LEGACY_KERAS"]
assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the library hides no GPU from the user's own work
assert tf.keras.version().startswith("3."), tf.keras.version()
assert type(tf.keras.layers.Dense(1)).__module__.startswith("keras."), type(tf.keras.layers.Dense(1)).__module__
print("keras3", tf.keras.version())
"""


def test_import_edgeprune_keeps_tf_keras_on_keras3(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "CUDA_VISIBLE_DEVICES")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    res = subprocess.run([sys.executable, "-c", USER_SESSION, str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "keras3 3." in res.stdout
