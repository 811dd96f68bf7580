"""The `edgeprune export` function: refuses damaged models, writes checked files atomically."""
import pytest

from edgeprune.errors import EdgepruneError


@pytest.fixture(scope="module")
def saved_model(trained_lenet5_h5):
    """The session's shared trained LeNet-5 as an .h5 file (tests/e2e/conftest.py)."""
    return trained_lenet5_h5


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_model_is_refused_and_nothing_written(saved_model, tmp_path, damage):
    from edgeprune.export.cli import export_cmd

    bad = tmp_path / "bad.h5"
    raw = saved_model.read_bytes()
    bad.write_bytes(raw[: len(raw) // 3] if damage == "truncated" else b"not a model at all" * 100)
    out = tmp_path / "out.tflite"
    with pytest.raises(EdgepruneError) as exc:
        export_cmd(bad, format="tflite", output=out)
    assert "\n" not in str(exc.value) and "bad.h5" in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


def test_export_cmd_int8_with_dataset_calibration(saved_model, tmp_path, capsys):
    from edgeprune.export.cli import export_cmd

    out = tmp_path / "m.tflite"
    r = export_cmd(saved_model, format="tflite", quant="int8", calib_data="fashion_mnist", output=out,
                   parity_samples=300)
    printed = capsys.readouterr().out
    assert out.is_file() and r["file_bytes"] == out.stat().st_size and r["file"] == str(out)
    assert r["quant"] == "int8" and r["samples"] == 300 and r["top1_agreement"] >= 0.97
    assert "fashion_mnist test split" in printed and f"{r['file_bytes']:,} bytes" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]  # no temp files left


def test_export_cmd_rejects_bad_options_before_loading(saved_model, tmp_path):
    from edgeprune.export.cli import export_cmd

    with pytest.raises(EdgepruneError, match="quant 'fp16' is not available for onnx"):
        export_cmd(saved_model, format="onnx", quant="fp16", output=tmp_path / "m.onnx")
    with pytest.raises(EdgepruneError, match="needs calibration data"):
        export_cmd(saved_model, format="onnx", quant="int8", output=tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_cmd_mixed_keeps_the_named_layer_float(saved_model, tmp_path):
    from edgeprune.export.cli import export_cmd
    from edgeprune.export.runtime import tflite_compute_ops

    out = tmp_path / "m.tflite"
    with pytest.raises(EdgepruneError, match="--keep-float only applies to --quant mixed"):
        export_cmd(saved_model, format="tflite", quant="int8", keep_float=["conv1"], output=out)
    r = export_cmd(saved_model, format="tflite", quant="mixed", keep_float=["conv1"], calib_data="fashion_mnist",
                   output=out, parity_samples=300)
    assert r["quant"] == "mixed" and r["top1_agreement"] >= 0.97
    dtypes = [op["input_dtype"] for op in tflite_compute_ops(out)]
    assert dtypes[0] == "float32" and set(dtypes[1:]) == {"int8"}  # conv1 float, conv2/fc1/fc2 int8
