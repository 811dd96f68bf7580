"""SSH runner against a real OpenSSH server started on 127.0.0.1 for this test module.

The server gets a fresh host key and accepts one fresh user key (AuthorizedKeysFile in a temp
dir); the "board's" Python is this venv's Python.  Then the failure modes a user meets: closed
port, changed host key, unknown host key, wrong login key, no TFLite interpreter on the board.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import ssh_runner
from edgeprune.harness.profiles import DeviceProfile
from helpers.harness_models import harness_models

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")

pytestmark = pytest.mark.skipif(not SSHD.exists() or shutil.which("ssh-keygen") is None or
                                shutil.which("ssh") is None,
                                reason="needs openssh-server (/usr/sbin/sshd) and openssh-client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not start listening")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "user_key")
    _keygen(d / "other_key")
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = _free_port()
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "StrictModes no", "UsePAM no", f"Subsystem sftp {SFTP_SERVER}", "",
    ]))
    if os.geteuid() == 0 and not Path("/run/sshd").exists():
        Path("/run/sshd").mkdir(mode=0o755)  # privilege-separation dir; the sshd service makes it at boot
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        host_key = (d / "host_key.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        other = (d / "other_key.pub").read_text().split()
        (d / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {other[0]} {other[1]}\n")
        (d / "empty_known_hosts").write_text("")
        yield {"dir": d, "port": port, "user": os.environ.get("USER") or "root"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _profile(sshd, *, known_hosts="known_hosts", identity="user_key", tflite="ai_edge_litert", port=None):
    d = sshd["dir"]
    import getpass

    return DeviceProfile(
        name="test-board", kind="ssh", arch="x86_64", cpu="host", threads=1,
        interpreter={"tflite": tflite, "onnx": "onnxruntime"}, python=sys.executable,
        host=f"{getpass.getuser()}@127.0.0.1", port=port or sshd["port"],
        known_hosts=str(d / known_hosts), identity_file=str(d / identity), source="test",
    )


def test_ssh_deploy_run_fetch_int8_tflite(sshd):
    m = harness_models()
    before = set(Path("/tmp").glob("edgeprune-bench.*"))
    result = ssh_runner.run(_profile(sshd), m.int8_tflite, eval_npz=m.eval_npz, runs=10, warmup=2)
    assert result["device"] == "test-board" and result["device_kind"] == "ssh" and not result["emulated"]
    assert result["ssh_target"].endswith("127.0.0.1:%d" % sshd["port"])
    assert result["interpreter"]["name"] == "ai_edge_litert"
    assert result["model_bytes"] == m.int8_tflite.stat().st_size
    assert result["latency_ms"]["p50"] > 0 and len(result["latencies_ms"]) == 10
    assert result["eval_samples"] == len(m.y_eval)
    preds = np.asarray(result["predictions"])
    assert result["accuracy"] == pytest.approx(float(np.mean(preds == m.y_eval)))
    # the board's temp dir was removed
    assert set(Path("/tmp").glob("edgeprune-bench.*")) <= before


def test_closed_port_says_unreachable(sshd):
    m = harness_models()
    with pytest.raises(DeviceError, match=r"cannot reach .*127\.0\.0\.1.*Connection refused") as e:
        ssh_runner.run(_profile(sshd, port=_free_port()), m.float_tflite, runs=1, warmup=0)
    assert "\n" not in str(e.value)


def test_changed_host_key_is_refused(sshd):
    m = harness_models()
    with pytest.raises(DeviceError, match="does not match known_hosts") as e:
        ssh_runner.run(_profile(sshd, known_hosts="wrong_known_hosts"), m.float_tflite, runs=1, warmup=0)
    assert "ssh-keygen -R 127.0.0.1" in str(e.value) and "\n" not in str(e.value)


def test_unknown_host_key_is_not_accepted_silently(sshd):
    m = harness_models()
    with pytest.raises(DeviceError, match="is not in known_hosts"):
        ssh_runner.run(_profile(sshd, known_hosts="empty_known_hosts"), m.float_tflite, runs=1, warmup=0)
    assert (sshd["dir"] / "empty_known_hosts").read_text() == ""  # nothing was added


def test_wrong_login_key_says_authentication_failed(sshd):
    m = harness_models()
    with pytest.raises(DeviceError, match="key authentication failed"):
        ssh_runner.run(_profile(sshd, identity="other_key"), m.float_tflite, runs=1, warmup=0)


def test_missing_tflite_interpreter_on_board_says_what_to_install(sshd):
    try:
        import tflite_runtime  # noqa: F401
        pytest.skip("tflite_runtime is installed here, so the board would not miss it")
    except ImportError:
        pass
    m = harness_models()
    with pytest.raises(DeviceError, match="pip install tflite-runtime"):
        ssh_runner.run(_profile(sshd, tflite="tflite_runtime"), m.float_tflite, runs=1, warmup=0)


def test_board_python_without_numpy_or_missing_python(sshd):
    m = harness_models()
    bare = "/usr/bin/python3"
    if not Path(bare).exists() or subprocess.run([bare, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip(f"{bare} has numpy here")
    profile = _profile(sshd).model_copy(update={"python": bare})
    with pytest.raises(DeviceError, match=r"numpy is not installed \(or does not import\) on test-board .* pip install numpy"):
        ssh_runner.run(profile, m.float_tflite, runs=1, warmup=0)
    profile = _profile(sshd).model_copy(update={"python": "/nonexistent/python3"})
    with pytest.raises(DeviceError, match="python '/nonexistent/python3' not found on test-board"):
        ssh_runner.run(profile, m.float_tflite, runs=1, warmup=0)


def _board_yaml(sshd, path: Path, *, host: bool = True) -> Path:
    import getpass

    d = sshd["dir"]
    lines = ["kind: ssh", "arch: aarch64", "cpu: cortex-a72", "threads: 1", f"python: {sys.executable}",
             f"port: {sshd['port']}", f"known_hosts: {d / 'known_hosts'}", f"identity_file: {d / 'user_key'}"]
    if host:
        lines.append(f"host: {getpass.getuser()}@127.0.0.1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_deploy_copies_the_recommended_file_and_times_it_beside_the_estimate(sshd, tmp_path, monkeypatch):
    """A Pi-4-like board (aarch64, cortex-a72): its emulated stand-in is qemu-aarch64, whose recommended
    file is copied to ~/edgeprune/<run>/ on the board and timed there; the estimate is shown beside it."""
    import json

    from edgeprune.harness.deploy import deploy
    from helpers.device_runs import recorded_metrics

    m = harness_models()
    run = tmp_path / "run"
    (run / "exports").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(recorded_metrics()))
    shutil.copy(m.int8_tflite, run / "exports" / "finetuned-int8.tflite")
    remote = Path.home() / "edgeprune" / "r"
    shutil.rmtree(remote, ignore_errors=True)
    lines: list[str] = []
    try:
        out = deploy(run, str(_board_yaml(sshd, tmp_path / "pi.yaml")), runs=5, warmup=1, log=lines.append)
        assert out["deployed"] and out["stand_in"] == "qemu-aarch64"
        assert out["artifact"] == "exports/finetuned-int8.tflite" and out["estimated_ms"] == 0.5
        assert (remote / "finetuned-int8.tflite").read_bytes() == m.int8_tflite.read_bytes()
        assert (remote / "runner.py").is_file()
        assert out["measured_p50_ms"] > 0
        assert "measured on the board; 0.5 ms estimated on Raspberry Pi 4 Model B (emulated Cortex-A72)" in lines[-1]
        assert json.loads((run / "deploy" / "pi.json").read_text())["measured_p50_ms"] == out["measured_p50_ms"]
    finally:
        shutil.rmtree(remote, ignore_errors=True)

    monkeypatch.delenv("RPI_HOST", raising=False)
    lines.clear()
    out = deploy(run, str(_board_yaml(sshd, tmp_path / "nohost.yaml", host=False)), log=lines.append)
    assert not out["deployed"]
    assert lines == [f"nohost: would copy exports/finetuned-int8.tflite ({out['file_bytes']:,} B; 0.5 ms estimated on "
                     "Raspberry Pi 4 Model B (emulated Cortex-A72)). Set RPI_HOST=user@host to deploy it and time "
                     "it on the board."]
