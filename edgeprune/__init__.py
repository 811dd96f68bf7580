"""edgeprune: structured channel pruning, QAT and TFLite/ONNX export for Keras models.

Importing the package quiets TensorFlow's logging and changes nothing else in the process (its
``tf.keras`` stays as it was; see :mod:`edgeprune._env`); heavy modules are imported lazily so the CLI
starts fast.
"""
from edgeprune import _env  # noqa: F401  (log settings that must come before tensorflow is imported)
from edgeprune.errors import EdgepruneError

__version__ = "0.1.0"

__all__ = ["EdgepruneError", "__version__", "prune", "load_model", "save_model"]


def __getattr__(name):
    if name == "prune":
        # lazy: pruning loads TensorFlow, and `import edgeprune` stays light
        from edgeprune.pruning.api import prune

        return prune
    if name in ("load_model", "save_model"):
        # lazy: modelio loads TensorFlow, and `import edgeprune` stays light
        from edgeprune import modelio

        return getattr(modelio, name)
    raise AttributeError(name)
