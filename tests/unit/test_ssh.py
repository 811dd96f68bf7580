"""SSH runner against a real OpenSSH server started on 127.0.0.1 for this test module.

The server gets a fresh host key and accepts one fresh user key (AuthorizedKeysFile in a temp
dir); the "board's" Python is this venv's Python.  Then the failure modes a user meets: closed
port, changed host key, unknown host key, wrong login key, no TFLite interpreter on the board.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import ssh_runner
from edgeprune.harness.profiles import DeviceProfile

SSHD = Path("/usr/sbin/sshd")

pytestmark = pytest.mark.skipif(not SSHD.exists() or shutil.which("ssh-keygen") is None or
                                shutil.which("ssh") is None,
                                reason="needs openssh-server (/usr/sbin/sshd) and openssh-client")


def test_host_resolution_order(monkeypatch):
    p = DeviceProfile(name="b", kind="ssh", arch="aarch64", cpu="cortex-a72", port=2222, source="b.yaml")
    monkeypatch.delenv(ssh_runner.HOST_ENV, raising=False)
    with pytest.raises(DeviceError, match="--host user@host"):
        ssh_runner.resolve_target(p)
    monkeypatch.setenv(ssh_runner.HOST_ENV, "pi@raspberrypi.local")
    assert ssh_runner.resolve_target(p) == ssh_runner.SshTarget("pi@raspberrypi.local", 2222)
    assert ssh_runner.resolve_target(p, "me@10.0.0.7:2200") == ssh_runner.SshTarget("me@10.0.0.7", 2200)
    with_host = p.model_copy(update={"host": "pi@board"})
    assert ssh_runner.resolve_target(with_host).destination == "pi@board"


def test_no_host_for_a_shipped_profile_suggests_a_profile_of_ones_own(monkeypatch, tmp_path):
    """Issue 23: the hint said to add host: to a file inside the installed package."""
    from edgeprune.harness.profiles import get_profile, load_profile_file

    monkeypatch.delenv(ssh_runner.HOST_ENV, raising=False)
    shipped = get_profile("rpi4")
    with pytest.raises(DeviceError) as e:
        ssh_runner.resolve_target(shipped)
    assert "~/.config/edgeprune/devices/rpi4.yaml" in str(e.value) and "--host user@host" in str(e.value)
    assert f"add host: to {shipped.source}" not in str(e.value)
    own = tmp_path / "myboard.yaml"
    own.write_text("kind: ssh\narch: aarch64\ncpu: cortex-a72\n")
    with pytest.raises(DeviceError, match=f"add host: to {own}"):
        ssh_runner.resolve_target(load_profile_file(own))
