"""ONNX int8 files store int8 weights (QAT and PTQ): about a quarter of the float file, parity as before."""
import pytest


def int8_share(path) -> float:
    """Share of the file's weight bytes (initializers with ≥ 64 values) held as int8."""
    import onnx
    from onnx import numpy_helper

    sizes = {}
    for init in onnx.load(str(path)).graph.initializer:
        a = numpy_helper.to_array(init)
        if a.size >= 64:
            sizes[a.dtype.name] = sizes.get(a.dtype.name, 0) + a.size
    return sizes.get("int8", 0) / sum(sizes.values())


@pytest.fixture(scope="module")
def data(fashion_mnist):
    # enough training that most test images sit clear of the decision boundary: PTQ rounding flips the
    # low-margin ones (3,000 images and 2 epochs left 74.6% accuracy and 97.2% top-1 agreement on one CPU; 20,000: 88.2%, 99.2%)
    return fashion_mnist.subset(train=20000, val=300, test=1000)


@pytest.mark.slow
def test_qat_and_ptq_onnx_store_int8_weights(data, tmp_path):
    from edgeprune import zoo
    from edgeprune.export.onnx import export_onnx
    from edgeprune.export.parity import check_parity
    from edgeprune.pruning import prune
    from edgeprune.quantize.qat import quantize_qat
    from edgeprune.train import fit

    model = zoo.build("lenet5")
    fit(model, data, epochs=2, batch_size=64, patience=None)
    model, _ = prune(model, 0.6, round_to=4)  # the quickstart's model
    fit(model, data, epochs=1, batch_size=64, patience=None)
    qat = quantize_qat(model)
    fit(qat, data, epochs=1, batch_size=64, learning_rate=1e-4, patience=None)
    files = {"float": export_onnx(model, tmp_path / "float.onnx"),
             "ptq": export_onnx(model, tmp_path / "ptq.onnx", quant="int8", calibration=data.calibration_samples(200)),
             "qat": export_onnx(qat, tmp_path / "qat.onnx")}
    size = {k: p.stat().st_size for k, p in files.items()}
    parity = {k: check_parity(p, qat if k == "qat" else model, data.x_test, data.y_test) for k, p in files.items()}
    print(size, {k: (r["accuracy"], r["keras_accuracy"], r["top1_agreement"], r["max_abs_diff"]) for k, r in parity.items()})
    assert parity["float"]["within_tolerance"] and int8_share(files["float"]) == 0
    for k in ("ptq", "qat"):
        assert size[k] < 0.35 * size["float"], (k, size)  # measured: 0.30 (PTQ) and 0.28 (QAT)
        assert int8_share(files[k]) > 0.95
        r = parity[k]
        assert r["quant"] == "int8" and r["top1_agreement"] >= 0.98
        assert r["accuracy"] >= r["keras_accuracy"] - 0.01 and r["keras_accuracy"] > 0.7
