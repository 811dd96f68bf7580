"""EfficientDet-Lite0 end to end: the builder (edgeprune.bench_suite.efficientdet_lite: structure,
parameters, export) and the estimated board time against published real-board latencies
(bench/board_check.yaml), on one export of Lite0 that both share (one file, so one test worker).

The unit test re-estimates every checked row from its recorded emulated measurement (instruction
mix and cache misses, bench/results/board-check.json, written by `make bench-boards`) with today's
core and board models, so a change to either is judged against every row without emulating again.
The emulated test here measures the lightest rows (EfficientDet-Lite0 on the Pi 4 and Pi 5 stand-ins)
end to end and checks they still pass and that the measurement repeats the recorded one.
"""
import collections
import json

import pytest

from edgeprune.bench_suite import board_check as bc
from edgeprune.bench_suite import efficientdet_lite as edl

# google/automl PR #1138 (efficientdet README "Parameters" column fix): model.summary() of automl's
# tf2 EfficientDetNet for efficientdet-lite0 gives 3,290,606 total / 3,243,470 trainable parameters
# (the README rounds it to 3.2M). Our builder reproduces both numbers exactly.
LITE0_TOTAL_PARAMS = 3_290_606
LITE0_TRAINABLE_PARAMS = 3_243_470
LITE0_ANCHORS = 9 * (40 * 40 + 20 * 20 + 10 * 10 + 5 * 5 + 3 * 3)  # P3..P7 at 320: 19206
# the board check's recorded measurements (make bench-boards)
RESULTS = json.loads(bc.RESULTS_FILE.read_text()) if bc.RESULTS_FILE.is_file() else None


@pytest.mark.slow  # builds a ~350-layer model (a few seconds)
def test_lite0_parameters_and_outputs():
    import numpy as np

    from edgeprune.pruning import model_stats

    model = edl.build_efficientdet_lite(0)
    assert tuple(model.inputs[0].shape) == (1, 320, 320, 3)
    assert [tuple(o.shape) for o in model.outputs] == [(1, LITE0_ANCHORS, 90), (1, LITE0_ANCHORS, 4)]
    stats = model_stats(model)
    assert stats["params"] == pytest.approx(LITE0_TOTAL_PARAMS, rel=0.05)
    assert stats["params"] == LITE0_TOTAL_PARAMS
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == LITE0_TRAINABLE_PARAMS
    assert 0.9e9 < stats["macs"] < 1.05e9  # ~0.97 GMACs
    types = collections.Counter(type(layer).__name__ for layer in model.layers)
    assert types["SeparableConv2D"] == 3 * 8 + 2 * 4  # BiFPN nodes + shared class/box convs
    assert types["MaxPooling2D"] == 14 and types["UpSampling2D"] + types["Resizing"] == 12


@pytest.mark.slow  # two TFLite conversions of Lite0 (about 2 minutes on 2 cores, shared with the board check)
def test_lite0_export_pair_op_mix(board_check_work):
    from ai_edge_litert.interpreter import Interpreter

    fp32 = board_check_work / "efficientdet-lite0" / "efficientdet-lite0-float32.tflite"
    int8 = board_check_work / "efficientdet-lite0" / "efficientdet-lite0-int8.tflite"
    # published (NobuoTsukamoto/benchmarks): 13.68 MB / 4.56 MB, which also hold the post-processing
    # (float32 anchors alone are 19206 x 4 x 4 B = 0.31 MB); without it ours are ~13.36 / ~4.21 MB
    assert 12.8e6 < fp32.stat().st_size < 13.9e6
    assert 3.9e6 < int8.stat().st_size < 4.6e6

    def ops(path):
        it = Interpreter(model_path=str(path))
        details = it._get_ops_details()
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        return collections.Counter(o["op_name"] for o in details), details, tensors

    count, _, _ = ops(fp32)
    assert count["CONV_2D"] == 102 and count["DEPTHWISE_CONV_2D"] == 80
    assert count["RESIZE_NEAREST_NEIGHBOR"] == 12 and count["MAX_POOL_2D"] == 14 and count["ADD"] == 42
    assert not set(count) - {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "RESIZE_NEAREST_NEIGHBOR",
                             "RESHAPE", "CONCATENATION"}
    count, details, tensors = ops(int8)
    convs = [o for o in details if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert len(convs) == 182
    assert all(tensors[o["inputs"][i]]["dtype"].__name__ == "int8" for o in convs for i in (0, 1))


@pytest.fixture(scope="module")
def board_check_work(tmp_path_factory):
    """A board-check work folder holding EfficientDet-Lite0 exported float32 and int8 (about 2 minutes,
    once): the export test and the emulated board check share it."""
    work = tmp_path_factory.mktemp("board-check")
    bc.export_model("efficientdet-lite0", work)
    return work


@pytest.mark.qemu
@pytest.mark.slow
def test_efficientdet_lite0_on_the_emulated_pi4_and_pi5_matches_the_published_ranking(board_check_work):
    from edgeprune.errors import DeviceError
    from edgeprune.harness.qemu import ensure_env

    try:
        ensure_env("aarch64", build=False)
    except DeviceError as e:
        pytest.skip(f"emulated aarch64 board not available: {e}")
    rows = [r for r in bc.checked_rows(bc.load_rows()) if r.model == "efficientdet-lite0"]
    assert {r.board for r in rows} == {"pi4", "pi5"}
    result = bc.run_check(rows, board_check_work, log=lambda *_: None)
    for v in result["rows"]:
        assert v["ranked_right"] and v["within_tolerance"], v
    if RESULTS is not None:  # the same files measure the same, run after run and machine after machine
        recorded = {(m["model"], m["device"]): m for m in RESULTS["measurements"]}
        for m in result["measurements"]:
            old = recorded[(m["model"], m["device"])]
            for p in ("float32", "int8"):
                assert m[p]["instructions"] == pytest.approx(old[p]["instructions"], rel=0.01)
