"""Process set-up that must happen before TensorFlow is imported.

Nothing here changes which Keras the process's ``tf.keras`` is: edgeprune builds its models with
``tf_keras`` by name (:mod:`edgeprune.keras`; models arriving from Keras 3 are carried across by
:mod:`edgeprune.modelio`), and tfmot, which would switch ``tf.keras`` to Keras 2 as it is imported, is
imported through :func:`edgeprune.quantize.qat.import_tfmot`, which keeps the user's Keras 3.

TensorFlow's C++ side logs a few INFO lines (oneDNN, CUDA) to file descriptor 2 *before* absl reads
any log-level setting, so the environment variables below cannot stop them.  The CLI therefore calls
:func:`quiet_native_logs`, which puts a filter on file descriptor 2 itself.
"""
import atexit
import logging
import os
import re
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

# absl/glog lines (`I1123 12:00:00.000000  1234 file.cc:12] ...`; before absl is set up the date is 0000
# and the seconds are epoch seconds) and absl's banner about them; the LiteRT/TFLite runtime's own INFO
# and VERBOSE lines (`INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`: its WARNING/ERROR lines
# stay), and the line the TFLite converter's quantizer prints once per quantized model
# (`fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, ...`), none of which obey
# TF_CPP_MIN_LOG_LEVEL
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|(?:INFO|VERBOSE): "
    rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: )")
QUIET_LOGGERS = ("tensorflow", "absl", "tf2onnx", "h5py", "jax", "onnxruntime")

_filter = None
_line_sink = [None]  # while a live progress display is shown: where forwarded lines go (edgeprune.progress)


def own_process() -> None:
    """Settings for a process edgeprune owns (the CLI), never for a user's process that imports it:
    an edge tool does not take a GPU by accident."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def quiet_native_logs() -> None:
    """Drop TensorFlow/absl log lines written by native code to file descriptor 2; keep everything else.

    File descriptor 2 becomes a pipe read by a thread that forwards every other line (Python's own
    stderr included, so the order is kept) to the real stderr.  At exit the pipe is drained.
    Call once, before TensorFlow is imported; a second call does nothing.
    """
    global _filter
    if _filter is not None:
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    os.set_inheritable(real, False)
    thread = threading.Thread(target=_pump, args=(read_end, real), name="edgeprune-stderr-filter", daemon=True)
    thread.start()
    _filter = (real, thread)
    atexit.register(_drain)


def real_stderr_fd() -> int | None:
    """The terminal-or-file that stderr really is while :func:`quiet_native_logs` filters fd 2, else None.

    A live progress display (edgeprune.progress) writes there directly: it must see the terminal,
    and its redraws are not lines a line filter could forward in time.
    """
    return _filter[0] if _filter is not None else None


def set_line_sink(sink) -> None:
    """While `sink` (a function of text) is set, the lines the filter keeps go to it instead of straight
    to the terminal: a live display prints them above its rows, which a direct write would break."""
    _line_sink[0] = sink


def _forward(real: int, kept: bytes) -> None:
    sink = _line_sink[0]
    if sink is not None:
        try:
            sink(kept.decode(errors="replace"))
            return
        except Exception:  # the display is gone (stopped while this line was on its way): write it plainly
            pass
    os.write(real, kept)


def _pump(read_end: int, real: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not NATIVE_LOG_LINE.match(line))
        if kept:
            _forward(real, kept)
    if pending and not NATIVE_LOG_LINE.match(pending):
        _forward(real, pending)
    os.close(read_end)


def _drain() -> None:
    """Give file descriptor 2 back to the real stderr and wait until the filter has forwarded the rest."""
    real, thread = _filter
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real, 2)  # closes the pipe's last write end held by this process: the reader sees EOF
    thread.join(timeout=2.0)


def quiet_python_logs() -> None:
    """Warnings and INFO/WARNING log records of the numeric libraries stay out of the CLI's stderr."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
