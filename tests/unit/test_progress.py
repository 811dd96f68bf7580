"""Progress of long work: live on a terminal (pseudo-terminal), one plain line per unit in a pipe, quiet."""
import io
import os
import re
import sys
from pathlib import Path

import pytest

from edgeprune import progress

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


@pytest.fixture(autouse=True)
def not_quiet():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_plain_mode_prints_one_line_per_unit_with_eta(capsys):
    assert progress.mode() == "plain"  # pytest captures stderr: not a terminal
    with progress.task("scan", total=3) as t:
        for i in range(1, 4):
            t.update(note="between units: not printed in plain mode")
            t.report(f"{i}/3 done", completed=i)
    err = capsys.readouterr().err.splitlines()
    assert [re.sub(r" \[.*\]$", "", line) for line in err] == ["scan: 1/3 done", "scan: 2/3 done", "scan: 3/3 done"]
    assert "ETA" in err[0] and "ETA" not in err[2]  # nothing left after the last unit
    assert not any(CONTROL.search(line) for line in err)


def test_nested_tasks_indent_and_quiet_prints_nothing(capsys):
    with progress.task("outer", total=1):
        with progress.task("inner", total=1) as inner:
            inner.report("done", completed=1)
    assert capsys.readouterr().err.startswith("  inner: done")
    progress.set_quiet(True)
    with progress.task("outer", total=1) as t:
        t.report("done", completed=1)
    progress.echo("a step line")
    assert capsys.readouterr() == ("", "")


def square_trial(value: int) -> dict:
    return {"value": value, "square": value * value}


def test_executor_reports_n_of_n_and_the_callers_line(capsys):
    from edgeprune.executor import get_executor

    best = lambda r, done: f"square {r['square']}, best so far {max(d['square'] for d in done)}"  # noqa: E731
    out = get_executor().map(square_trial, [dict(value=v) for v in (3, 1, 2)], label="squares", describe=best)
    assert [r["square"] for r in out] == [9, 1, 4]
    err = [re.sub(r" \[.*\]$", "", line) for line in capsys.readouterr().err.splitlines()]
    assert err == ["squares: 1/3  square 9, best so far 9", "squares: 2/3  square 1, best so far 9",
                   "squares: 3/3  square 4, best so far 9"]


def _env(tmp_path: Path) -> dict:
    # a fresh cache: the trained baseline is not reused, so the run trains (and shows its epochs)
    return dict(os.environ, TERM="xterm-256color", EDGEPRUNE_CACHE=str(tmp_path / "cache"), COLUMNS="160")


# --------------------------------------------------------------------------------------------
# the live display on a fake terminal: what the screen shows once the escape codes are applied


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def screen(out: str) -> list[str]:
    """The lines a terminal shows after `out` (text, \\r, \\n, cursor up, erase line; other codes ignored)."""
    rows, r, c = [""], 0, 0
    for tok in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", out):
        if not tok:
            continue
        if tok == "\r":
            c = 0
        elif tok == "\n":
            r, c = r + 1, 0
            rows += [""] * (r + 1 - len(rows))
        elif tok.startswith("\x1b["):
            code, arg = tok[-1], tok[2:-1]
            if code == "A":
                r = max(0, r - int(arg or 1))
            elif code == "K":
                rows[r] = "" if arg == "2" else rows[r][:c]
        else:
            line = rows[r].ljust(c)
            rows[r] = line[:c] + tok + line[c + len(tok):]
            c += len(tok)
    return [row.rstrip() for row in rows]


@pytest.fixture
def terminal(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr(progress, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(progress, "_live_stream", lambda: term)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert progress.mode() == "live"
    yield term
    assert progress._live["progress"] is None and not progress._live["tasks"]


def _row(task) -> float:
    return progress._live["progress"]._tasks[task._row].completed


def test_the_outer_row_advances_within_a_step_as_the_inner_task_reports(terminal):
    with progress.task("run", total=7) as run:
        run.update(completed=0, note="step 1/7: train")
        with progress.task("train", total=10) as train:
            train.update(completed=5)
            assert _row(run) == pytest.approx(0.5)  # half of step 1, not 0 until the step ends
            train.update(completed=10)
            assert _row(run) == pytest.approx(1.0)
        assert _row(run) == pytest.approx(1.0)  # the step's tail (saving, evaluating) does not go back
        run.update(completed=1, note="step 2/7: prune")
        assert _row(run) == 1.0 and run.within == 0.0
        with progress.task("benchmark", total=4) as bench:
            with progress.task("one run", total=2) as inner:  # nested twice: both rows move
                inner.update(completed=1)
            assert _row(bench) == pytest.approx(0.5) and _row(run) == pytest.approx(1 + 0.5 / 4)
            bench.report("1/4 done", completed=1)
            assert _row(run) == pytest.approx(1.25)


def test_lines_printed_during_the_live_rows_end_above_them_and_the_rows_go_before_the_last_line(terminal):
    import sys

    with progress.task("run demo", total=3) as run:
        run.update(completed=2, note="step 3/3: benchmark")
        with progress.task("benchmark", total=2) as bench:
            progress._live["progress"].refresh()
            bench.report("model.tflite on host: 1.2 ms", completed=1)
            print("warning: a line on stderr", file=sys.stderr)  # not through the progress module
            progress._live["progress"].refresh()
            bench.report("model.onnx on host: 0.9 ms", completed=2)
            progress._live["progress"].refresh()
        progress._live["progress"].refresh()
    terminal.write("done in 3 s\n")  # the run's last line, written after the display stopped
    shown = [re.sub(r" \[\d+s(, ETA \d+s)?\]$", "", line) for line in screen(terminal.getvalue()) if line]
    assert shown == ["  benchmark: model.tflite on host: 1.2 ms", "warning: a line on stderr",
                     "  benchmark: model.onnx on host: 0.9 ms", "done in 3 s"], shown  # no row left, none overdrawn


def test_the_stderr_filter_hands_lines_to_a_live_display():
    from edgeprune import _env

    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    got = []
    _env.set_line_sink(got.append)
    try:
        os.write(write_end, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nwarning: kept\nlast")
        os.close(write_end)
        _env._pump(read_end, out_write)
    finally:
        _env.set_line_sink(None)
    os.close(out_write)
    assert got == ["warning: kept\n", "last"] and os.read(out_read, 100) == b""
    os.close(out_read)
