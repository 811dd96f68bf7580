"""Mobile metadata for an exported ``.tflite``: input normalization and label names, as sidecar files.

Android's tooling (Android Studio's ML model binding, the TFLite Task Library, MediaPipe Tasks)
reads this from TFLite Metadata packed *inside* the file.  No library that writes it installs
with edgeprune's pinned stack (checked 2026-11-29): ``tflite-support`` 0.4.4, its last release,
needs protobuf < 4 while TensorFlow 2.21 needs protobuf >= 6.31; every ``mediapipe`` release that
allows that protobuf needs absl-py ~= 2.3 while tensorflow-model-optimization 0.8.1 needs ~= 1.2,
and mediapipe 1.2.3's wheel no longer ships the C extension its metadata writers import.

So the metadata is written *beside* the model, in the form those tools use:

* ``<name>.metadata.json``: TFLite Metadata as JSON, field for field the ``ModelMetadata`` table of
  ``metadata_schema.fbs`` (the JSON that tflite-support's ``MetadataDisplayer`` prints).  Packing it
  later is one step with either library: ``flatc -b metadata_schema.fbs <name>.metadata.json`` and
  ``MetadataPopulator.load_metadata_buffer`` + ``load_associated_files`` + ``populate``.
* ``<name>.labels.txt``: one label per line, in output order (the ``TENSOR_AXIS_LABELS`` file
  the JSON names), when the dataset has class names.

Normalization follows the metadata convention ``input = (pixel - mean) / std`` on 8-bit pixels and
follows the dataset's input scaling (``dataset: {scaling: ...}``, edgeprune.data.dataset.SCALINGS):
unit (pixel / 255) → mean 0, std 255; symmetric (pixel / 127.5 - 1) → mean 127.5, std 127.5; raw
(0..255 as stored) → mean 0, std 1.  It is only stated when the dataset came as 8-bit images: float
data are used as stored, and the description says to scale inputs as during training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

METADATA_SUFFIX = ".metadata.json"
LABELS_SUFFIX = ".labels.txt"
MIN_PARSER_VERSION = "1.0.0"  # NormalizationOptions, ImageProperties and TENSOR_AXIS_LABELS are all in 1.0


def sidecar_paths(tflite_path) -> tuple[Path, Path]:
    """``x.tflite`` → (``x.metadata.json``, ``x.labels.txt``)."""
    p = Path(tflite_path)
    return p.with_name(p.stem + METADATA_SUFFIX), p.with_name(p.stem + LABELS_SUFFIX)


def outputs_probabilities(model, x) -> bool:
    """Whether the model outputs probabilities (rows ≥ 0 summing to 1 on `x`) rather than logits.

    Measured, not read from the last layer: a QAT wrapper or a Softmax layer hides the activation.
    """
    y = np.asarray(model(np.asarray(x[:16], np.float32), training=False), np.float64)
    return bool((y >= 0).all() and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3))


def model_metadata(*, name: str, input_shape, class_names, normalization: tuple[float, float] | None,
                   probabilities: bool, description: str = "", scaling: str | None = None) -> dict:
    """The ``ModelMetadata`` table (metadata_schema.fbs) as a JSON-ready dict.

    `normalization` is (mean, std) of the 8-bit pixels (None: the inputs were not 8-bit pixels); `scaling`
    names it (unit, raw, symmetric) in the input's description."""
    channels = int(input_shape[-1]) if len(input_shape) == 3 else None
    image = {"name": "image", "description": "Input image, NHWC, float32 (or int8 with the tensor's own quantization)."}
    if channels in (1, 3):
        image["content"] = {"content_properties_type": "ImageProperties",
                            "content_properties": {"color_space": "GRAYSCALE" if channels == 1 else "RGB"}}
    if normalization:
        mean, std = (float(v) for v in normalization)
        n = channels or 1
        image["process_units"] = [{"options_type": "NormalizationOptions",
                                   "options": {"mean": [mean] * n, "std": [std] * n}}]
        image["stats"] = {"max": [(255.0 - mean) / std] * n, "min": [(0.0 - mean) / std] * n}
        named = f" (input scaling {scaling})" if scaling else ""
        image["description"] += f" Fed as (pixel - {mean:g}) / {std:g} of 8-bit pixels{named}."
    else:
        image["description"] += " The training data were not 8-bit pixels: scale inputs as during training."
    output = {"name": "probability" if probabilities else "logits",
              "description": ("Probabilities of each class." if probabilities
                              else "Logits of each class: apply a softmax for probabilities."),
              "content": {"content_properties_type": "FeatureProperties", "content_properties": {}}}
    if probabilities:
        output["stats"] = {"max": [1.0], "min": [0.0]}
    labels_file = None
    if class_names:
        labels_file = f"{name}{LABELS_SUFFIX}"
        output["associated_files"] = [{"name": labels_file, "description": "Labels for the output classes, in order.",
                                       "type": "TENSOR_AXIS_LABELS"}]
    return {"name": name, "description": description or f"Image classifier exported by edgeprune ({name}).",
            "subgraph_metadata": [{"input_tensor_metadata": [image], "output_tensor_metadata": [output]}],
            "min_parser_version": MIN_PARSER_VERSION}


def write_tflite_metadata(tflite_path, model, dataset) -> dict:
    """Write ``<name>.metadata.json`` (and ``<name>.labels.txt`` when the dataset names its classes).

    Returns ``{"metadata": path, "labels": path or None}``.
    """
    tflite_path = Path(tflite_path)
    meta_path, labels_path = sidecar_paths(tflite_path)
    class_names = list(getattr(dataset, "class_names", None) or [])
    n_out = int(model.outputs[0].shape[-1])
    if class_names and len(class_names) != n_out:
        class_names = []  # labels that do not match the outputs would mislabel every prediction
    meta = model_metadata(name=tflite_path.stem, input_shape=tuple(model.inputs[0].shape[1:]),
                          class_names=class_names, normalization=getattr(dataset, "normalization", None),
                          scaling=getattr(dataset, "scaling", None),
                          probabilities=outputs_probabilities(model, dataset.x_test if len(dataset.x_test) else dataset.x_train))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if class_names:
        labels_path.write_text("\n".join(class_names) + "\n")
    elif labels_path.exists():
        labels_path.unlink()
    return {"metadata": meta_path, "labels": labels_path if class_names else None}
