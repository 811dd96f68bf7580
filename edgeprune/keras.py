"""The one place that names the Keras edgeprune builds with: tf-keras (Keras 2), which tfmot needs."""
from edgeprune import _env  # noqa: F401

import tf_keras as keras  # noqa: E402

layers = keras.layers

__all__ = ["keras", "layers"]
