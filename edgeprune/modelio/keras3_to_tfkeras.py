"""Keras 3 model -> tf-keras model (what edgeprune works on)."""
from __future__ import annotations

from edgeprune.errors import ModelLoadError
from edgeprune.keras import keras
from edgeprune.modelio.rebuild import Direction, Rebuilder
from edgeprune.modelio.rules import ACTIVATIONS_KERAS3_TO_TFKERAS


def _tf_keras():
    return keras


KERAS3_TO_TF_KERAS = Direction(
    target_name="tf-keras",
    target=_tf_keras,
    source_prefixes=("keras.src.", "keras.layers", "keras.models"),
    edits="to_tfkeras",
    activations=ACTIVATIONS_KERAS3_TO_TFKERAS,
    error=ModelLoadError,
)


def from_keras3(model):
    """Rebuild a Keras 3 functional/Sequential model as an equivalent tf-keras model (weights copied)."""
    return Rebuilder(KERAS3_TO_TF_KERAS).model(model)
