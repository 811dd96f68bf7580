"""Ray executor against a real cluster started with `ray start --head`, and an address where none runs."""
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edgeprune.executor import get_executor

TESTS = Path(__file__).resolve().parents[1]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed (optional extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_search_refuses_unreachable_cluster_before_loading_anything(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not read: the cluster is checked first")
    address = f"127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "edgeprune", "search", str(model), "--budget", "macs=1000",
                          "--executor", "ray", "--ray-address", address, "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray not installed")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach a Ray cluster at " + address), out.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def ray_head():
    """A head node of our own on free ports (stopped by signalling its `ray start --block` process group)."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="epray")  # short: Ray's socket paths must fit in 107 bytes
    ports = {flag: str(free_port()) for flag in ("--ray-client-server-port", "--dashboard-agent-listen-port",
                                                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                                                 "--metrics-export-port")}
    # The head and this process agree on no token auth (a loopback-only test cluster): left unset, Ray
    # 2.60 turns token auth on when ~/.ray/auth_token exists, and a local Ray instance of an earlier
    # process may have rewritten that file ("InvalidAuthToken", seen on this machine)
    saved_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    # --node-ip-address: the head advertises loopback; by default it names the machine's own network
    # address, which a sandboxed machine may not reach (seen: "Failed to connect to Ray cluster at 192.0.2.2")
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
           "--node-ip-address=127.0.0.1",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
           *[f"{k}={v}" for k, v in ports.items()]]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "ray start --head exited"
                time.sleep(0.5)
        else:
            pytest.fail("ray head did not come up in 120 s")
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # `ray start --block` stops what it started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of that group still alive
        except ProcessLookupError:
            pass
        if saved_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_mode


@pytest.mark.slow
@needs_ray
def test_trials_run_on_a_cluster_started_with_ray_start(ray_head, tmp_path):
    from helpers.trials import square_trial

    ex = get_executor("ray", address=ray_head)
    assert ex.describe()["address"] == ray_head and ex.describe()["cluster_cpus"] == 2
    jobs = [dict(out_path=str(tmp_path / f"t{i}.json"), value=v) for i, v in enumerate([6, 7, 8])]
    assert [r["square"] for r in ex.map(square_trial, jobs)] == [36, 49, 64]
    assert (tmp_path / "t2.json").exists()
