"""The estimated board time against published real-board latencies (bench/board_check.yaml).

The unit test re-estimates every checked row from its recorded emulated measurement (instruction
mix and cache misses, bench/results/board-check.json, written by `make bench-boards`) with today's
core and board models, so a change to either is judged against every row without emulating again.
The emulated test measures the lightest rows (EfficientDet-Lite0 on the Pi 4 and Pi 5 stand-ins)
end to end and checks they still pass and that the measurement repeats the recorded one.
"""
import json

import pytest

from edgeprune.bench_suite import board_check as bc

RESULTS = json.loads(bc.RESULTS_FILE.read_text()) if bc.RESULTS_FILE.is_file() else None


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
