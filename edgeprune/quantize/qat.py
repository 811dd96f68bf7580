"""Quantization-aware training models with tfmot (tf-keras only).

`quantize_qat` annotates every layer tfmot can quantize, except the ones the user keeps float
(`skip_layers`: names or regular expressions), and applies the 8-bit scheme. Fine-tuning is done
by :func:`edgeprune.train.fit` like any other model.

A QAT model saved as ``.keras`` does not load back (tfmot PR #1123), so `save_qat` writes ``.h5``
or a SavedModel folder and `load_qat` reads them inside `qat_scope`.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import tensorflow as tf
from tf_keras.src.saving.serialization_lib import SafeModeScope

from edgeprune.errors import EdgepruneError, ModelLoadError
from edgeprune.fileio import umask_permissions
from edgeprune.keras import keras
from edgeprune.quantize import QAT_SCHEMES

SKIP_FIX = "add it to quantize.skip_layers to keep it float, or quantize after training (quantize: {mode: ptq})"
BN_FIX = ("QAT folds a BatchNormalization into the conv/dense layer right before it: put the BN before the "
          "activation (conv → BN → ReLU), keep it float (quantize.skip_layers), or quantize after training "
          "(quantize: {mode: ptq})")
# Not in tfmot's registry but quantized through its graph transforms (folded into the conv before them).
TRANSFORM_HANDLED = {"BatchNormalization", "SyncBatchNormalization", "SeparableConv1D", "SeparableConv2D"}


def import_tfmot():
    """tensorflow_model_optimization, imported without switching this process's ``tf.keras`` to Keras 2.

    tfmot sets ``TF_USE_LEGACY_KERAS=1`` when it is imported (it builds on tf-keras either way); had
    ``tf.keras`` not been resolved yet, it would resolve to tf-keras for the rest of the process, under
    the user's own code. So ``tf.keras`` is resolved first (to Keras 3), and the variable is put back.
    """
    if "tensorflow_model_optimization" in sys.modules:
        return sys.modules["tensorflow_model_optimization"]
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    tf.keras.version()  # resolve the lazy tf.keras now, as the process's environment says
    try:
        # here and only here: tfmot would switch tf.keras to Keras 2 as it loads
        import tensorflow_model_optimization as tfmot
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


def _scheme(scheme: str):
    tfmot = import_tfmot()

    if scheme == "default":
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    if scheme == "prune_preserve":
        return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    raise EdgepruneError(f"unknown QAT scheme '{scheme}'", f"use one of {', '.join(QAT_SCHEMES)}")


def qat_scope(*custom_objects: dict):
    """Custom-object scope that deserializes QAT models of both schemes (plus `custom_objects`)."""
    tfmot = import_tfmot()
    # tfmot's submodules only after import_tfmot() (above), which keeps the process's tf.keras on Keras 3
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        prune_preserve_quantize_registry as pp,
    )

    extra = {
        name: getattr(pp, name)
        for name in ("PrunePreserveDefaultWeightsQuantizer", "PrunePreserveDefault8BitWeightsQuantizer",
                     "PrunePreserveDefault8BitConvWeightsQuantizer")
    }
    return tfmot.quantization.keras.quantize_scope(extra, *custom_objects)


def is_qat_model(model) -> bool:
    """True when the model carries tfmot fake-quant wrappers (it was made by quantize_apply)."""
    import_tfmot()
    # tfmot's submodules only after import_tfmot() (above), which keeps the process's tf.keras on Keras 3
    from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer, quantize_wrapper

    return any(isinstance(l, (quantize_wrapper.QuantizeWrapper, quantize_layer.QuantizeLayer)) for l in model.layers)


def _matcher(skip_layers: Iterable[str]):
    patterns = []
    for p in skip_layers:
        try:
            patterns.append((p, re.compile(p)))
        except re.error as err:
            raise EdgepruneError(f"quantize.skip_layers entry '{p}' is not a valid regular expression ({err})",
                                 "escape special characters or use the exact layer name") from err
    used: set[str] = set()

    def skipped(name: str) -> bool:
        hit = False
        for raw, rx in patterns:
            if name == raw or rx.fullmatch(name):
                used.add(raw)
                hit = True
        return hit

    return skipped, patterns, used


def quantize_qat(model, *, skip_layers: Iterable[str] = (), scheme: str = "default"):
    """A QAT copy of `model` (same weights); layers matching `skip_layers` stay float.

    Raises EdgepruneError naming the first layer tfmot cannot quantize, and for skip patterns
    that match no layer (a typo would otherwise silently quantize everything).
    """
    tfmot = import_tfmot()

    if not isinstance(model, keras.Model) or not (
        isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)
    ):
        raise EdgepruneError(
            f"QAT needs a tf-keras Sequential or functional model, got {type(model).__name__}",
            "load the model with edgeprune.modelio.load_model (it converts Keras 3 models) or rebuild it functionally",
        )
    if is_qat_model(model):
        raise EdgepruneError(f"model '{model.name}' is already quantization-aware", "fine-tune or export it directly")
    qs = _scheme(scheme)
    registry = qs.get_quantize_registry()
    skipped, patterns, used = _matcher(skip_layers)

    skip = {layer.name for layer in model.layers if skipped(layer.name)}
    unused = [raw for raw, _ in patterns if raw not in used]
    if unused:
        raise EdgepruneError(
            f"quantize.skip_layers entries {unused} match no layer of '{model.name}'",
            "use exact layer names or regular expressions that match them (see the model summary)",
        )
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise EdgepruneError(
                f"layer '{layer.name}' is a nested model ({type(layer).__name__}); tfmot cannot quantize nested models",
                "flatten the model into one functional graph before QAT",
            )
        if isinstance(layer, keras.layers.InputLayer) or layer.name in skip:
            continue
        if not registry.supports(layer) and type(layer).__name__ not in TRANSFORM_HANDLED:
            raise EdgepruneError(
                f"tfmot cannot quantize layer '{layer.name}' ({type(layer).__name__})", SKIP_FIX)
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def clone_fn(layer):
        if isinstance(layer, keras.layers.InputLayer) or layer.name in skip:
            return layer.__class__.from_config(layer.get_config())
        return annotate(layer.__class__.from_config(layer.get_config()))

    # tfmot clones the model from its config; the model is already in this process, so re-creating
    # its Lambda layers (kept float via skip_layers) is no deserialization risk (SafeModeScope(False)).
    try:
        # tfmot re-creates layers from their configs: the model's own (custom) classes must be in scope
        own_classes = {type(layer).__name__: type(layer) for layer in model.layers}
        with qat_scope(own_classes), SafeModeScope(False):
            annotated = keras.models.clone_model(model, clone_function=clone_fn)
            annotated.set_weights(model.get_weights())
            return tfmot.quantization.keras.quantize_apply(annotated, qs)
    except (RuntimeError, ValueError, TypeError, AttributeError) as err:
        m = re.search(r"Layer (\S+?):<class '[\w.]*?(\w+)'>", str(err)) or re.search(r"Layer (\w+) (?:is )?not supported", str(err))
        where = f"layer '{m.group(1)}'" + (f" ({m.group(2)})" if m.lastindex and m.lastindex > 1 else "") if m else "a layer"
        detail = "" if m else f": {str(err).splitlines()[0][:200]}"  # a named layer says it all
        raise EdgepruneError(f"tfmot cannot quantize {where}{detail}",
                             BN_FIX if "BatchNormalization" in where else SKIP_FIX) from err


def save_qat(model, path) -> Path:
    """Save a QAT model as .h5 (file) or SavedModel (folder; any other path without .h5), atomically."""
    path = Path(path)
    if path.suffix == ".keras":
        raise EdgepruneError(
            f"cannot save QAT model as {path.name}: tfmot QAT models do not load back from .keras",
            f"use {path.with_suffix('.h5').name} or a folder (SavedModel)",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    h5 = path.suffix in (".h5", ".hdf5")
    if h5:
        fd, tmp = tempfile.mkstemp(suffix=".h5", prefix=f".{path.stem}.", dir=path.parent)
        os.close(fd)
    else:
        tmp = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with qat_scope(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*HDF5 file.*")
            model.save(tmp, save_format="h5" if h5 else "tf", include_optimizer=False)
        umask_permissions(tmp)  # tempfile made it private
        if h5:
            os.replace(tmp, path)
        else:
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if os.path.isdir(tmp) else Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_qat(path):
    """Load a model written by `save_qat` (or any tf-keras model file) with the QAT classes in scope."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file {path} does not exist", "check the path")
    try:
        with qat_scope():
            return keras.models.load_model(path, compile=False)
    except Exception as err:  # h5py/TF raise many types for a damaged file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ModelLoadError(f"cannot read model {path}: {first}", "re-save it with save_qat (.h5 or SavedModel folder)") from err
