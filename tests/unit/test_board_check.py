"""The estimated board time against published real-board latencies (bench/board_check.yaml).

The unit test re-estimates every checked row from its recorded emulated measurement (instruction
mix and cache misses, bench/results/board-check.json, written by `make bench-boards`) with today's
core and board models, so a change to either is judged against every row without emulating again.
The emulated test measures the lightest rows (EfficientDet-Lite0 on the Pi 4 and Pi 5 stand-ins)
end to end and checks they still pass and that the measurement repeats the recorded one.
"""
import json


from edgeprune.bench_suite import board_check as bc

RESULTS = json.loads(bc.RESULTS_FILE.read_text()) if bc.RESULTS_FILE.is_file() else None


def test_the_check_set_has_single_thread_pi4_and_pi5_rows_with_sources():
    rows = bc.checked_rows(bc.load_rows())
    assert len(rows) >= 6
    assert sum(r.board == "pi4" for r in rows) >= 2 and sum(r.board == "pi5" for r in rows) >= 2
    for r in rows:
        assert r.threads == 1 and r.source and r.float32_ms > 0 and r.int8_ms > 0


def test_every_checked_row_is_ranked_right_and_within_25_percent_of_the_published_ratio():
    assert RESULTS is not None, "run `make bench-boards` to record the emulated measurements"
    measured = {(m["model"], m["device"]): m for m in RESULTS["measurements"]}
    rows = bc.checked_rows(bc.load_rows())
    verdicts = []
    for row in rows:
        m = measured.get((row.model, bc.BOARD_DEVICES[row.board]))
        assert m is not None, f"{row.id}: no recorded measurement (make bench-boards)"
        verdicts.append(bc.judge(row, m))
    failed = [f"{v['id']}: estimated {v['estimated_ratio']:.2f}x vs published {v['published_ratio']:.2f}x"
              for v in verdicts if not (v["ranked_right"] and v["within_tolerance"])]
    assert not failed, failed
    # the point of the estimate: instruction counts alone say otherwise on the Pi 4
    pi4 = [v for v in verdicts if v["board"] == "pi4"]
    assert all(v["instructions_ratio"] < v["estimated_ratio"] for v in pi4)
