"""Progress of long work: live on a terminal (pseudo-terminal), one plain line per unit in a pipe, quiet."""
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprune import progress

RECIPE = Path(__file__).resolve().parents[1] / "data" / "progress_recipe.yaml"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


@pytest.fixture(autouse=True)
def not_quiet():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_fit_callback_one_line_per_epoch_and_no_keras_bar(capsys):
    import numpy as np

    from edgeprune.data.dataset import make_dataset
    from edgeprune.keras import keras
    from edgeprune.train import fit

    rng = np.random.default_rng(0)
    ds = make_dataset("tiny", rng.integers(0, 255, (96, 8, 8), dtype=np.uint8), rng.integers(0, 2, 96),
                      rng.integers(0, 255, (8, 8, 8), dtype=np.uint8), rng.integers(0, 2, 8), val_fraction=0.25, seed=0)
    inp = keras.Input((8, 8, 1))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp)))
    fit(model, ds, epochs=3, batch_size=16, patience=None, callbacks=[progress.fit_callback("tiny fit")])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["tiny fit: epoch 1/3", "tiny fit: epoch 2/3", "tiny fit: epoch 3/3"]
    assert all("val_accuracy" in line for line in lines)
    assert "/step" not in captured.out + captured.err and "━" not in captured.out + captured.err


def run_in_pty(args: list[str], env: dict, timeout_s: float = 900) -> tuple[int, str]:
    """Run `args` with stdin/stdout/stderr on a pseudo-terminal (160 columns); return (exit code, output)."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=timeout_s), b"".join(chunks).decode(errors="replace")


def test_live_display_under_a_terminal():
    """Cheap check of the terminal path: rows redrawn with escape codes, the report lines kept."""
    code = ("from edgeprune import progress\n"
            "with progress.task('scan', total=2) as t:\n"
            "    t.update(completed=1, note='halfway')\n"
            "    t.report('2/2 done', completed=2)\n"
            "print('the table')\n")
    rc, out = run_in_pty([sys.executable, "-c", code], dict(os.environ, TERM="xterm-256color"))
    assert rc == 0, out
    assert ANSI.search(out)  # cursor control: the live rows
    text = ANSI.sub("", out)
    assert "scan: 2/2 done" in text and text.rstrip().endswith("the table")


def _env(tmp_path: Path) -> dict:
    # a fresh cache: the trained baseline is not reused, so the run trains (and shows its epochs)
    return dict(os.environ, TERM="xterm-256color", EDGEPRUNE_CACHE=str(tmp_path / "cache"), COLUMNS="160")


@pytest.mark.slow
def test_cli_run_under_a_terminal_shows_progress_and_ends_with_the_table(tmp_path):
    rc, out = run_in_pty([sys.executable, "-m", "edgeprune", "run", str(RECIPE), "--out", str(tmp_path / "run")],
                         _env(tmp_path))
    assert rc == 0, out[-3000:]
    frames = ANSI.findall(out)
    assert len(frames) > 50  # the display was redrawn as the run went
    text = ANSI.sub("", out).replace("\r", "\n")
    # live rows: an epoch and batch counter with loss, and a benchmark row naming file and device
    assert re.search(r"train .*epoch 1/2 batch \d+/\d+ +loss", text), text[-3000:]
    assert re.search(r"benchmark .*finetuned-none\.ort on host", text)
    lines = [line for line in text.splitlines() if line.strip()]
    title = max(i for i, line in enumerate(lines) if "edgeprune run progress" in line)
    assert not any("━" in line for line in lines[title:])  # the bars are gone when the table prints
    answer = max(i for i, line in enumerate(lines) if line.startswith("Which file to ship:"))
    table = "\n".join(lines[title:answer])
    assert table.count("host") == 6 and "ort/none" in table
    assert lines[answer + 1].startswith("  host = ") and lines[-1].startswith("Report: ")  # then the one answer


@pytest.mark.slow
def test_cli_run_piped_is_plain_one_line_per_epoch_and_quiet_is_the_table(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "edgeprune", "run", str(RECIPE), "--out", str(run_dir)]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(tmp_path), timeout=900)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out[-3000:]
    assert not CONTROL.search(out)  # no escapes, no carriage returns
    lines = out.splitlines()
    assert len([line for line in lines if line.strip().startswith("train: epoch")]) == 2
    assert len([line for line in lines if line.strip().startswith("fine-tune: epoch")]) == 1
    assert len([line for line in lines if line.strip().startswith("benchmark: ")]) == 6  # 3 formats × 2 stages
    answer = lines.index("Which file to ship:")  # the table, then the one answer per device, end the output
    assert "test images" in "".join(lines[answer - 3:answer]) and lines[-1].startswith("Report: ")

    # the .ort files came out of the recipe, were measured, and the report says which file apps load
    report = json.loads((run_dir / "report.json").read_text())
    assert {r["format"] for r in report["rows"] if r["device"] == "host"} == {"tflite", "onnx", "ort"}
    apps = {m["format"]: m for m in report["mobile"]}
    assert apps["ort"]["file"].endswith(".ort") and (run_dir / apps["ort"]["beside"][0]).is_file()
    assert (run_dir / apps["tflite"]["file"]).is_file() and len(apps["tflite"]["beside"]) == 2
    assert "Files for mobile apps" in (run_dir / "report.md").read_text()

    # --quiet on the same run (all steps cached): only the table on stdout
    quiet = subprocess.run([sys.executable, "-m", "edgeprune", "--quiet", *args[3:]], capture_output=True,
                           env=_env(tmp_path), timeout=600)
    assert quiet.returncode == 0, quiet.stderr.decode()[-2000:]
    stdout = quiet.stdout.decode()
    assert stdout.lstrip().startswith("edgeprune run progress") and "[1/6]" not in stdout
    assert "epoch" not in quiet.stderr.decode() and "benchmark:" not in quiet.stderr.decode()


# --------------------------------------------------------------------------------------------
# the live display on a fake terminal: what the screen shows once the escape codes are applied


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


def test_under_a_terminal_with_the_cli_filter_no_row_is_left_and_no_line_overdrawn():
    """The CLI's fd-2 filter forwards native and Python stderr lines; during live rows they go above them."""
    code = ("import os, sys, time\n"
            "from edgeprune import _env\n"
            "_env.quiet_native_logs()\n"
            "from edgeprune import progress\n"
            "with progress.task('run demo', total=2) as run:\n"
            "    run.update(completed=1, note='step 2/2: benchmark')\n"
            "    with progress.task('benchmark', total=2) as b:\n"
            "        time.sleep(0.3)\n"
            "        b.report('first.tflite 1 ms', completed=1)\n"
            "        os.write(2, b'WARNING: a native line\\nINFO: dropped by the filter\\n')\n"
            "        print('a Python stderr line', file=sys.stderr, flush=True)\n"
            "        time.sleep(0.4)\n"
            "        b.report('second.onnx 2 ms', completed=2)\n"
            "        time.sleep(0.3)\n"
            "    progress.close_task(run)\n"
            "    print('done in 1 s', flush=True)\n")
    rc, out = run_in_pty([sys.executable, "-c", code], dict(os.environ, TERM="xterm-256color"))
    assert rc == 0, out
    shown = [re.sub(r" \[\d+s(, ETA \d+s)?\]$", "", line) for line in screen(out.replace("\r\n", "\n")) if line]
    assert shown == ["  benchmark: first.tflite 1 ms", "WARNING: a native line", "a Python stderr line",
                     "  benchmark: second.onnx 2 ms", "done in 1 s"], shown
