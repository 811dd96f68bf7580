"""`edgeprune export`: one model file → a checked .tflite / .onnx file.

The file is written under a temporary name, checked against the Keras model, and renamed onto
`--output` only when the check passes: a failed export or a failed float parity leaves no file.
Heavy imports happen inside the function so `edgeprune --help` stays fast.
"""
import os
from pathlib import Path
from typing import Annotated, List, Optional

import numpy as np
import typer

from edgeprune.data import load_dataset
from edgeprune.data.check import check_inputs, require_single_io
from edgeprune.data.dataset import _as_images
from edgeprune.data.sources import split_scaling
from edgeprune.errors import EdgepruneError, ModelLoadError
from edgeprune.export.parity import assert_parity, check_parity, format_parity
from edgeprune.export.targets import ExportOptions, get_target
from edgeprune.fileio import atomic_output as atomic_path

DEFAULT_CALIBRATION_SAMPLES = 200
RANDOM_PARITY_SAMPLES = 64


def load_any_model(path: Path):
    """A tf-keras model from any file edgeprune reads, QAT .h5/SavedModel included."""
    path = Path(path)
    if not path.exists():  # before TensorFlow loads
        raise ModelLoadError(f"model file {path} does not exist", "check the path")
    # modelio and qat load TensorFlow: only once the path is checked (the CLI imports this module)
    from edgeprune.modelio import load_model
    from edgeprune.quantize.qat import qat_scope

    with qat_scope():
        try:
            return load_model(path)
        except EdgepruneError:
            raise
        except Exception as err:  # a damaged file can raise anything from h5py / protobuf / zip
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise ModelLoadError(f"cannot read model {path}: {first}", "check the file is a complete .keras/.h5/SavedModel") from err


def _npz_arrays(path: Path) -> dict:
    try:
        with np.load(path) as d:
            return {k: d[k] for k in d.files}
    except Exception as err:
        raise EdgepruneError(f"cannot read {path}: {err}", "pass a .npz written by np.savez") from err


def load_calibration(spec: str, n: int = DEFAULT_CALIBRATION_SAMPLES):
    """Representative samples from a dataset name, a dataset .npz (x_train...) or a .npz of inputs
    (any with a ``:SCALING`` suffix for uint8 pixels, see edgeprune.data.load_dataset)."""
    name, scaling = split_scaling(spec)
    path = Path(name).expanduser()
    if path.suffix == ".npz" and path.is_file():
        arrays = _npz_arrays(path)
        if "x_train" not in arrays:
            key = next((k for k in ("x", "calibration", "x_calib") if k in arrays), None)
            if key is None and len(arrays) == 1:
                key = next(iter(arrays))
            if key is None:
                raise EdgepruneError(f"{path} has arrays {sorted(arrays)}; none is the calibration input",
                                     "save it as np.savez(path, x=samples) or as a dataset with x_train")
            return _as_images(arrays[key], scaling)[:n]
    return load_dataset(spec).calibration_samples(n)


def parity_inputs(spec: Optional[str], model, samples: int):
    """(x, y, where) for the parity check: the dataset's test split, or seeded uniform inputs."""
    if spec:
        path = Path(split_scaling(spec)[0]).expanduser()
        is_inputs_npz = path.suffix == ".npz" and path.is_file() and "x_test" not in _npz_arrays(path)
        if not is_inputs_npz:
            ds = load_dataset(spec)
            return ds.x_test[:samples], ds.y_test[:samples], f"{ds.name} test split"
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).uniform(0, 1, size=(min(samples, RANDOM_PARITY_SAMPLES), *shape)).astype(np.float32)
    return x, None, "uniform random inputs (no labelled data given)"


def export_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.keras, .h5, SavedModel dir; QAT .h5 too).")],
    format: Annotated[str, typer.Option("--format", "-f", help="An export target: tflite, onnx, or ort (ONNX Runtime Mobile, with its operators config).")] = "tflite",
    quant: Annotated[str, typer.Option("--quant", "--precision", help="Precision; tflite: none|int8|fp16|dynamic|mixed|sparse (float32, 1×1 kernels stored sparse: refused with the reasons when XNNPACK's sparse path would not run it); onnx and ort: none|int8.")] = "none",
    keep_float: Annotated[Optional[List[str]], typer.Option("--keep-float", help="Layer kept float in a mixed file (repeat).")] = None,
    calib_data: Annotated[Optional[str], typer.Option(help="Dataset name or .npz for int8 calibration. A :raw or :symmetric suffix (e.g. my.npz:raw) changes how uint8 pixels are scaled (default :unit, pixel/255 in [0, 1]); float data are used as stored.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file (default: next to the model).")] = None,
    int8_io: Annotated[bool, typer.Option("--int8-io", help="TFLite int8 input/output tensors.")] = False,
    parity_data: Annotated[Optional[str], typer.Option(help="Dataset for the parity check (default: --calib-data).")] = None,
    parity_samples: Annotated[int, typer.Option(help="Test images used for the parity check.")] = 500,
    opset: Annotated[int, typer.Option(help="ONNX opset (13–18).")] = 15,
    tolerance: Annotated[float, typer.Option(help="Max |Δ| allowed for float exports.")] = 1e-4,
) -> dict:
    """Export a model to TFLite, ONNX or ORT (ONNX Runtime Mobile) and check it against the Keras model."""
    target = get_target(format)
    if quant not in target.precisions:
        raise EdgepruneError(f"quant '{quant}' is not available for {target.name}", f"use one of {', '.join(target.precisions)}")
    if keep_float and quant != "mixed":
        raise EdgepruneError(f"--keep-float only applies to --quant mixed, not '{quant}'", "add --quant mixed")
    model = Path(model)
    output = Path(output) if output else model.with_name(f"{model.stem}-{quant}{target.suffix}")
    if output.suffix.lower() != target.suffix:
        raise EdgepruneError(f"output {output} does not end in {target.suffix}", f"name it *{target.suffix}")

    keras_model = load_any_model(model)  # refuse a bad model before anything else is loaded

    require_single_io(keras_model, "export (its parity check against the Keras model)")

    # qat loads TensorFlow as it is imported, and the CLI imports this module
    from edgeprune.quantize.qat import is_qat_model

    qat = is_qat_model(keras_model)
    calibration = None
    if target.needs_calibration(quant, qat=qat):
        if not calib_data:
            raise EdgepruneError(f"{quant} export needs calibration data", "pass --calib-data fashion_mnist (or a .npz)")
        calibration = load_calibration(calib_data)
        check_inputs(keras_model, calibration, f"calibration data {calib_data}")
    x, y, where = parity_inputs(parity_data or calib_data, keras_model, parity_samples)
    check_inputs(keras_model, x, f"parity data {parity_data or calib_data}")

    tmp_sidecars = []
    try:
        with atomic_path(output) as tmp:
            tmp_sidecars = target.sidecars(tmp)
            target.write(keras_model, tmp, quant=quant, calibration=calibration,
                         options=ExportOptions(int8_io=int8_io, opset=opset, keep_float=tuple(keep_float or ())))
            result = check_parity(tmp, keras_model, x, y, tolerance=tolerance)
            assert_parity(result)
        for src, dst in zip(tmp_sidecars, target.sidecars(output)):  # only once the model file is in place
            os.replace(src, dst)
            print(f"wrote {dst}")
    finally:
        for src in tmp_sidecars:
            Path(src).unlink(missing_ok=True)
    result["file"] = str(output)
    print(f"wrote {output} ({result['file_bytes']:,} bytes){' from a QAT model' if qat else ''}")
    print(f"parity on {result['samples']} {where}: {format_parity(result)}")
    return result
