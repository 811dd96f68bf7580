"""Progress of long work (training, trials, benchmark runs, board builds), shown on stderr.

Three modes, chosen once per process:

* ``live``: stderr is a terminal.  One rich display; every open task is a row with a bar,
  elapsed time, ETA and a note (epoch and batch, loss/accuracy, the best trial so far).
* ``plain``: stderr is a pipe or a file (CI logs).  One line per finished unit (epoch, trial,
  benchmark run), no control characters.
* ``quiet``: ``edgeprune --quiet``.  Nothing but the final table and errors.

Tasks nest (a search trial fine-tunes a model): each one is a row of the same display, or in
plain mode prints its lines indented by depth.  A task opened inside another is one unit of it: as
the inner task advances (epochs, batches, benchmark runs), the outer row advances within that unit,
so a run's overall row and its ETA move during a long step, not only between steps.  ``Task.report`` prints one line in both modes
(above the bars on a terminal, so the scrollback keeps a record); ``Task.update`` only moves the
live display.  While the rows are shown, every other line written to the terminal (stdout, Python's
stderr, native log lines that pass the CLI's filter on fd 2) is printed above them, never across
them, and the rows are cleared when the last task closes, before the line that follows.  Keras is reached through :func:`fit_callback`, a callback given to ``fit``; Keras's
own progress bar stays off (``verbose=0``).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

from rich.console import Console
from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from edgeprune import _env
from edgeprune._env import real_stderr_fd

_settings = {"quiet": False}
_live = {"progress": None, "tasks": []}  # the open rich Progress and the stack of open Task objects


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress and no step log; the final table and errors still print."""
    _settings["quiet"] = bool(quiet)


def mode() -> str:
    """``quiet``, ``live`` (stderr is a terminal) or ``plain``."""
    if _settings["quiet"]:
        return "quiet"
    if _stderr_is_terminal() and os.environ.get("TERM") != "dumb":
        return "live"
    return "plain"


def _stderr_is_terminal() -> bool:
    real = real_stderr_fd()  # the CLI filters fd 2 through a pipe (edgeprune._env.quiet_native_logs)
    return os.isatty(real) if real is not None else sys.stderr.isatty()


def _live_stream():
    """Where the live display draws: the real stderr, past the CLI's line filter on fd 2."""
    real = real_stderr_fd()
    if real is None:
        return sys.stderr
    if _settings.get("stream") is None:
        _settings["stream"] = os.fdopen(os.dup(real), "w", buffering=1, encoding="utf-8", errors="replace")
    return _settings["stream"]


def echo(message: str) -> None:
    """A line of a command's log on stdout (the run's step lines); silent under --quiet."""
    if not _settings["quiet"]:
        print(message, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Task:
    """One piece of long work: ``total`` units (None: unknown), of which ``completed`` are done."""

    def __init__(self, label: str, total: float | None, depth: int, parent: "Task | None" = None):
        self.label, self.total, self.depth, self.parent = label, total, depth, parent
        self.completed = 0.0
        self.within = 0.0  # how far into its current unit, from the task open inside it (0..1)
        self.started = time.monotonic()
        self.closed = False
        self._row = None  # rich task id in live mode

    # -- what callers use --------------------------------------------------------------------
    def update(self, *, completed: float | None = None, advance: float = 0.0, total: float | None = None,
               note: str | None = None) -> None:
        """Move the live display (nothing is printed in plain mode)."""
        if total is not None:
            self.total = total
        before = self.completed
        self.completed = completed if completed is not None else self.completed + advance
        if self.completed != before:
            self.within = 0.0  # a new unit begins
        self._redraw(note)
        if self.parent is not None:
            self.parent._inner_moved(self)

    @property
    def fraction(self) -> float | None:
        """Share done, counting the part of the current unit that the inner task reports; None: no total."""
        if not self.total:
            return None
        return min(1.0, (self.completed + self.within) / self.total)

    def _inner_moved(self, inner: "Task") -> None:
        done = inner.fraction
        if done is None or not self.total or self.completed >= self.total or done <= self.within:
            return  # never backwards within a unit: a second inner task starts at 0
        self.within = done
        self._redraw(None)
        if self.parent is not None:
            self.parent._inner_moved(self)

    def _redraw(self, note: str | None) -> None:
        progress = _live["progress"]
        if progress is not None and self._row is not None:
            fields = {} if note is None else {"note": note}
            shown = self.completed if not self.total else min(self.total, self.completed + self.within)
            progress.update(self._row, completed=shown, total=self.total, **fields)

    def report(self, text: str, *, completed: float | None = None, advance: float = 0.0) -> None:
        """One finished unit: a line on stderr (plain) or above the bars (live), with elapsed and ETA."""
        self.update(completed=completed, advance=advance, note=text)
        if mode() == "quiet":
            return
        elapsed = time.monotonic() - self.started
        timing = _duration(elapsed)
        if self.total and 0 < self.completed < self.total:
            timing += f", ETA {_duration(elapsed / self.completed * (self.total - self.completed))}"
        _emit(f"{'  ' * self.depth}{self.label}: {text} [{timing}]")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _emit(line: str) -> None:
    progress = _live["progress"]
    if progress is not None:
        progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        print(line, file=sys.stderr, flush=True)


def _start_live():
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24), TaskProgressColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
        console=Console(file=_live_stream()), transient=True,
        # prints to stdout go above the bars only when stdout is this terminal too; Python's stderr too,
        # unless the CLI filters fd 2: then the filter hands its lines to the display (_env.set_line_sink)
        redirect_stdout=sys.stdout.isatty(), redirect_stderr=_env.real_stderr_fd() is None)
    progress.start()
    if _env.real_stderr_fd() is not None:
        _env.set_line_sink(lambda text: _print_above(progress, text))
    return progress


def _print_above(progress, text: str) -> None:
    for line in text.splitlines():
        progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _stop_live(progress) -> None:
    """Clear the rows (the display is transient) before anything else is printed."""
    _env.set_line_sink(None)
    progress.stop()


def open_task(label: str, total: float | None = None) -> Task:
    """Start a task (prefer the :func:`task` context manager; Keras callbacks cannot use one)."""
    task = Task(label, total, depth=len(_live["tasks"]), parent=_live["tasks"][-1] if _live["tasks"] else None)
    _live["tasks"].append(task)
    if mode() == "live":
        if _live["progress"] is None:
            _live["progress"] = _start_live()
        task._row = _live["progress"].add_task("  " * task.depth + label, total=total, note="")
    return task


def close_task(task: Task, summary: str | None = None) -> None:
    """End a task; `summary` is printed as its last line (both modes).  Closing a closed task does nothing;
    closing the last open one clears the live rows, so the next line prints where they were."""
    if task.closed:
        return
    if summary:
        task.report(summary)
    stack = _live["tasks"]
    # tasks opened inside this one and never closed (an exception inside Keras' fit) end with it
    ending = [task]
    if task in stack:
        ending = stack[stack.index(task):]
        del stack[stack.index(task):]
    progress = _live["progress"]
    for t in ending:
        if progress is not None and t._row is not None:
            progress.remove_task(t._row)
        t._row, t.closed = None, True
    if progress is not None and not stack:
        _live["progress"] = None
        _stop_live(progress)


@contextlib.contextmanager
def task(label: str, total: float | None = None):
    """``with progress.task("sensitivity", total=12) as t: ... t.report("3/12 ...", advance=1)``."""
    t = open_task(label, total)
    try:
        yield t
    finally:
        close_task(t)


def note(text: str) -> None:
    """Say what the innermost open task is doing right now (live display only)."""
    if _live["tasks"]:
        _live["tasks"][-1].update(note=text)


# --------------------------------------------------------------------------------------------
# Keras


def _metrics_text(logs: dict | None, keys=("loss", "accuracy", "val_loss", "val_accuracy")) -> str:
    logs = logs or {}
    return "  ".join(f"{k} {float(logs[k]):.4f}" for k in keys if k in logs)


_callback_classes: dict = {}  # keras module -> its FitProgress class


def fit_callback(label: str, keras=None):
    """A Keras callback that shows epochs and batches of one ``fit`` as a task named `label` (a tf-keras
    callback, or one of the `keras` module given: Keras 3's ``fit`` takes only its own callbacks)."""
    if keras is None:
        # tf-keras (TensorFlow) only for a fit callback: the CLI imports this module
        from edgeprune.keras import keras
    if keras not in _callback_classes:

        class FitProgress(keras.callbacks.Callback):
            def __init__(self, label: str):
                super().__init__()
                self.label, self.task, self.epoch = label, None, 0
                self.live = False

            def on_train_begin(self, logs=None):
                self.epochs = int(self.params.get("epochs") or 1)
                self.steps = int(self.params.get("steps") or 0)
                self.task = open_task(self.label, total=self.epochs * self.steps if self.steps else self.epochs)
                self.live = mode() == "live"

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.live and self.steps:
                    self.task.update(completed=self.epoch * self.steps + batch + 1,
                                     note=f"epoch {self.epoch + 1}/{self.epochs} batch {batch + 1}/{self.steps}  "
                                          + _metrics_text(logs, ("loss", "accuracy")))

            def on_epoch_end(self, epoch, logs=None):
                done = (epoch + 1) * self.steps if self.steps else epoch + 1
                self.task.report(f"epoch {epoch + 1}/{self.epochs}  {_metrics_text(logs)}", completed=done)

            def on_train_end(self, logs=None):
                if self.task is not None:
                    close_task(self.task)
                    self.task = None

        _callback_classes[keras] = FitProgress
    return _callback_classes[keras](label)
