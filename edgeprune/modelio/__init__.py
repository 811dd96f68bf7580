"""Carry models between Keras 3 and tf-keras.

edgeprune works on tf-keras models (tfmot needs Keras 2); users mostly have Keras 3 files.
``read_model`` loads any of: Keras 3 ``.keras``/``.h5``, tf-keras ``.keras``/``.h5``, tf-keras
SavedModel directory, and returns a tf-keras model; ``save_model`` writes a file the user's own
Keras loads without custom objects.
"""
from edgeprune.modelio.io import LoadedModel, load_model, read_model, save_model
from edgeprune.modelio.keras3_to_tfkeras import from_keras3
from edgeprune.modelio.tfkeras_to_keras3 import to_keras3

__all__ = ["LoadedModel", "read_model", "load_model", "save_model", "to_keras3", "from_keras3"]
