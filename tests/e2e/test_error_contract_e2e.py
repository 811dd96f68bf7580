"""The error contract of issue 16, case by case: one line (two with a hint), non-zero exit, nothing lost."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers.robustness import INPUT_SHAPE, tiny_model, write_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from edgeprune.modelio import save_model

    d = tmp_path_factory.mktemp("contract")
    save_model(tiny_model(), d / "tiny.keras", flavor="keras3")
    save_model(tiny_model(two_inputs=True), d / "two.keras", flavor="keras3")
    return d


# ---- arguments and paths: refused before TensorFlow loads -----------------------------------------

def test_missing_paths_are_refused_without_importing_tensorflow(tmp_path):
    code = ("import sys; from edgeprune.cli import run_command as r; "
            f"codes = [r(['inspect', '{tmp_path}/no.keras']), r(['prune', '{tmp_path}/no.keras']), "
            f"r(['run', '{tmp_path}/no.yaml']), r(['export', '{tmp_path}/no.keras']), r(['bench', '{tmp_path}/no.tflite']), "
            f"r(['prune', '{tmp_path}/no.keras', '--ratio', '1.5']), r(['run', '{tmp_path}/bad.yaml'])]; "
            "print(codes, 'tensorflow' in sys.modules)")
    (tmp_path / "bad.yaml").write_text("model: lenet5\nsteps:\n  - prune: {ratoi: 0.5}\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.stdout.strip() == "[2, 2, 2, 2, 2, 2, 2] False", out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 7 and all(ln.startswith("error: ") for ln in out.stderr.splitlines())


# ---- the real process: no TensorFlow chatter on stderr, Ctrl-C and SIGTERM -------------------------

def edgeprune(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "edgeprune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, **kw)


def test_stderr_of_a_process_that_loaded_tensorflow_is_one_line(files, tmp_path):
    bad = write_dataset(tmp_path / "wrong.npz", shape=(10, 10, 3))
    out = edgeprune("prune", files / "tiny.keras", "--data", bad, "-o", tmp_path / "p.keras")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: dataset wrong has inputs of shape (10, 10, 3), the model expects (8, 8, 1) — "
        "use data of the model's input shape and classes (or the model trained on this data)"], out.stderr
    verbose = edgeprune("--verbose", "prune", files / "tiny.keras", "--data", bad, "-o", tmp_path / "p.keras")
    assert verbose.returncode == 2 and verbose.stderr.strip().splitlines()[-1].startswith("error: dataset wrong")


def test_export_and_bench_print_none_of_litert_or_converter_lines(files, tmp_path):
    """Native lines of the TFLite converter and of the LiteRT interpreter stay off stderr (issue 23)."""
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).random((16, *INPUT_SHAPE), dtype=np.float32))
    data = write_dataset(tmp_path / "data.npz")
    leaked = ("INFO: Created TensorFlow Lite", "fully_quantize:", "inference_type")
    for args in (("export", files / "tiny.keras", "--format", "tflite", "--quant", "int8", "--calib-data", calib,
                  "-o", tmp_path / "int8.tflite"),
                 ("export", files / "tiny.keras", "--format", "tflite", "--quant", "mixed", "--keep-float", "conv",
                  "--calib-data", calib, "-o", tmp_path / "mixed.tflite"),
                 ("bench", tmp_path / "int8.tflite", "--device", "host", "--runs", "3", "--data", data)):
        out = edgeprune(*args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not [ln for ln in out.stderr.splitlines() if any(s in ln for s in leaked)], out.stderr
    verbose = edgeprune("--verbose", "export", files / "tiny.keras", "--format", "tflite", "--quant", "int8",
                        "--calib-data", calib, "-o", tmp_path / "int8v.tflite", cwd=tmp_path)
    assert verbose.returncode == 0 and "fully_quantize:" in verbose.stderr, verbose.stderr


def _interrupt_run(tmp_path, signum):
    """Start a real `edgeprune run`, wait until its train step runs, then send `signum`."""
    data = write_dataset(tmp_path / "d.npz", n=4000, shape=(28, 28, 1), classes=10)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: lenet5\ndataset: {data}\nsteps:\n  - train: {{epochs: 50}}\n  - prune: {{ratio: 0.5}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune", "run", str(recipe), "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    for line in proc.stdout:
        if "train ..." in line:
            break
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    # progress lines (one per epoch, in a pipe) may come first; the refusal is the one `error:` line, last
    lines = err.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:], err
    return proc.returncode, lines[-1:]


@pytest.mark.slow
def test_ctrl_c_exits_130_naming_the_step(tmp_path):
    code, lines = _interrupt_run(tmp_path, signal.SIGINT)
    assert code == 130
    assert lines == ["error: interrupted (SIGINT) during step 1/2 (train) — re-run the same command to resume "
                     "from that step (finished steps are cached)"], lines
    assert (tmp_path / "run" / ".edgeprune-run").is_file()


@pytest.mark.slow
def test_sigterm_exits_143_naming_the_step(tmp_path):
    code, lines = _interrupt_run(tmp_path, signal.SIGTERM)
    assert code == 143 and len(lines) == 1 and "interrupted (SIGTERM) during step 1/2 (train)" in lines[0], lines
