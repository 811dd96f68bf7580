"""tf-keras model -> Keras 3 model (what users get back when their Keras is Keras 3)."""
from __future__ import annotations

import keras

from edgeprune.errors import EdgepruneError
from edgeprune.modelio.rebuild import Direction, Rebuilder
from edgeprune.modelio.rules import ACTIVATIONS_TFKERAS_TO_KERAS3


def _keras3():
    return keras


TF_KERAS_TO_KERAS3 = Direction(
    target_name="Keras 3",
    target=_keras3,
    source_prefixes=("tf_keras.",),
    edits="to_keras3",
    activations=ACTIVATIONS_TFKERAS_TO_KERAS3,
    error=EdgepruneError,
)


def to_keras3(model):
    """Rebuild a tf-keras functional/Sequential model as an equivalent Keras 3 model (weights copied)."""
    return Rebuilder(TF_KERAS_TO_KERAS3).model(model)
