"""ONNX → ORT format (``.ort``) for ONNX Runtime Mobile, with onnxruntime's own converter.

Android (``onnxruntime-android``) and iOS (``onnxruntime-c`` / ``onnxruntime-objc`` pods) apps load
the ``.ort`` file.  Beside it goes ``<name>.required_operators.config``: the operators the model
uses, which a reduced-size ONNX Runtime build takes (``build.sh --minimal_build
--include_ops_by_config``).  The conversion applies ONNX Runtime's graph optimizations once
("Fixed" style, tuned for ARM: no x86-only NCHWc layout, int8 QDQ kept as int8), so the app does
not repeat them at start-up.  A runtime at least as new as the converter loads the file.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export import runtime
from edgeprune.export.onnx import export_onnx
from edgeprune.export.targets import ExportOptions, ExportTarget
from edgeprune.fileio import atomic_output as atomic_path
from edgeprune.quantize import ONNX_QUANT_MODES

CONFIG_SUFFIX = ".required_operators.config"
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd",
                 "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid",
                 "QLinearLeakyRelu", "QLinearSoftmax", "QGemm", "DynamicQuantizeLinear", "MatMulInteger",
                 "ConvInteger"}


def config_path(ort_path) -> Path:
    """``exports/x.ort`` → ``exports/x.required_operators.config``."""
    ort_path = Path(ort_path)
    return ort_path.with_name(ort_path.stem + CONFIG_SUFFIX)


def onnx_to_ort(onnx_path, ort_path, *, config=None) -> tuple[Path, Path]:
    """Convert an ``.onnx`` file to ``ort_path`` and write its required-operators config.

    Both files are written under temporary names and renamed into place only when the
    conversion succeeded.  Returns (ort file, config file).
    """
    # onnxruntime loads only when a file is converted: plan validation imports every export target
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)  # an INFO line per config written
    onnx_path, ort_path = Path(onnx_path), Path(ort_path)
    config = Path(config) if config else config_path(ort_path)
    with tempfile.TemporaryDirectory(prefix="edgeprune-ort-") as work:
        src = Path(work) / "model.onnx"  # the converter names its outputs after the input file
        shutil.copyfile(onnx_path, src)
        out = Path(work) / "out"
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per file it converts
                convert_onnx_models_to_ort(src, output_dir=out, optimization_styles=[OptimizationStyle.Fixed],
                                           target_platform="arm")
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise EdgepruneError(f"ONNX Runtime could not convert {onnx_path.name} to the ORT format: {first}",
                                 "check the .onnx file loads in onnxruntime (edgeprune bench FILE.onnx)") from err
        converted, ops = out / "model.ort", out / f"model{CONFIG_SUFFIX}"
        if not converted.is_file() or not ops.is_file():
            raise EdgepruneError(f"the ORT converter wrote no .ort file for {onnx_path.name}",
                                 "report it with the .onnx file")
        with atomic_path(ort_path) as tmp:
            shutil.copyfile(converted, tmp)
            _check_loads(tmp)
        # the generated header names the temporary input; say which file it belongs to instead
        lines = [ln for ln in ops.read_text().splitlines() if not ln.startswith("#")]
        with atomic_path(config) as tmp:
            tmp.write_text("# Operators used by the .ort model beside this file (ONNX Runtime reduced build: "
                           "--include_ops_by_config)\n" + "\n".join(lines) + "\n")
    return ort_path, config


def export_ort(model, path, *, quant: str = "none", calibration=None, opset: int = 15, config=None) -> Path:
    """Keras model → ``.onnx`` (edgeprune.export.onnx, same quantization) → ``path`` (.ort) + config."""
    with tempfile.TemporaryDirectory(prefix="edgeprune-ort-") as work:
        onnx_file = export_onnx(model, Path(work) / f"{Path(path).stem}.onnx", quant=quant,
                                calibration=calibration, opset=opset)
        onnx_to_ort(onnx_file, path, config=config)
    return Path(path)


def _check_loads(path: Path) -> None:
    # onnxruntime loads only when a file is checked: plan validation imports every export target
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EdgepruneError(f"converted ORT model does not load in onnxruntime: {first}",
                             "report it with the .onnx file") from err


ORT_IDENTIFIER = b"ORTM"  # bytes 4..8 of every ORT-format flatbuffer


def check_ort_file(path: Path) -> None:
    """An ORT-format flatbuffer: the ORTM identifier at bytes 4..8 and a root offset inside the file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != ORT_IDENTIFIER or int.from_bytes(head[:4], "little") >= size:
        raise EdgepruneError(f"{path} is not a complete ORT-format file (no ORTM flatbuffer header)",
                             "export it again (edgeprune export --format ort) and pass that file")


def operators(path) -> dict[str, set[str]]:
    """domain → operator types used by an ``.ort`` file (read with onnxruntime's ORT-format reader)."""
    # onnxruntime loads only when a file is read: plan validation imports every export target
    from onnxruntime.tools.ort_format_model import OrtFormatModelProcessor

    required: dict = {}
    OrtFormatModelProcessor(str(path), required, None).process()
    return {domain: set().union(*by_opset.values()) for domain, by_opset in required.items()}


def quant_mode(path) -> str:
    """``int8`` when the optimized graph holds quantized operators, else ``none``."""
    ops = set().union(set(), *operators(path).values())
    return "int8" if ops & QUANTIZED_OPS else "none"


def _write(model, path, *, quant: str, calibration=None, options: ExportOptions = ExportOptions()) -> Path:
    return export_ort(model, path, quant=quant, calibration=calibration, opset=options.opset)


TARGET = ExportTarget(
    name="ort", suffix=".ort", precisions=ONNX_QUANT_MODES, write=_write,
    predict=runtime.onnx_predict, read_precision=quant_mode, check_file=check_ort_file, interpreter_key="onnx",
    calibrated=frozenset({"int8"}), sidecars=lambda path: [config_path(path)],
    description="ORT format for ONNX Runtime Mobile (Android, iOS), with its required-operators config",
)
