"""Run the benchmark on a real board over SSH, with the system OpenSSH client (``ssh``/``scp``).

OpenSSH rather than paramiko: it reads the user's ``~/.ssh/config`` (aliases, jump hosts, agents)
and ``known_hosts`` exactly as an interactive ``ssh`` does.  Host-key checking is strict: an unknown
or changed key is an error, never accepted silently.  Password prompts are disabled (BatchMode);
key login is required.

Steps: make a temp dir on the board, copy runner.py + model (+ eval .npz) there, run the runner with
the board's Python, copy result.json back, remove the temp dir.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeprune.errors import DeviceError
from edgeprune.harness.runner_io import (RUNNER_SCRIPT, annotate, check_model_file, interpreter_for,
                                         read_result, runner_args, runner_failure)
from edgeprune.harness.shipped_devices import SHIPPED_DIR
from edgeprune.progress import note

if TYPE_CHECKING:
    from edgeprune.harness.profiles import DeviceProfile

KIND = "ssh"
EMULATED = False
USES_HOST = True
HOST_ENV = "RPI_HOST"
CONNECT_TIMEOUT_S = 10
SSH_ERROR = 255  # ssh's own exit status; anything else is the remote command's


@dataclass(frozen=True)
class SshTarget:
    destination: str  # user@host (or an alias from ~/.ssh/config)
    port: int
    known_hosts: str | None = None
    identity_file: str | None = None

    def options(self) -> list[str]:
        """Options shared by ssh and scp (the port flag differs and is added by the caller)."""
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "ServerAliveInterval=15"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity_file:
            opts += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        return opts

    def __str__(self) -> str:
        return f"{self.destination}:{self.port}" if self.port != 22 else self.destination


def resolve_target(profile: DeviceProfile, host: str | None = None) -> SshTarget:
    """``host`` (the --host option) wins, then the profile's host, then $RPI_HOST.

    ``user@host:port`` is accepted; the port otherwise comes from the profile.
    """
    dest = host or profile.host or os.environ.get(HOST_ENV)
    if not dest:
        raise DeviceError(f"no SSH host for device '{profile.name}'",
                          f"pass --host user@host, set {HOST_ENV}=user@host, or {_where_to_set_host(profile)}")
    port = profile.port
    m = re.fullmatch(r"(.+?):(\d+)", dest)
    if m and ":" not in m.group(1):
        dest, port = m.group(1), int(m.group(2))
    expand = lambda p: str(Path(p).expanduser()) if p else None  # noqa: E731
    return SshTarget(dest, port, expand(profile.known_hosts), expand(profile.identity_file))


def _where_to_set_host(profile: DeviceProfile) -> str:
    """A shipped profile is part of the installed package (or the source): the user's own copy is the place for host:."""
    if profile.source and not Path(profile.source).resolve().is_relative_to(SHIPPED_DIR):
        return f"add host: to {profile.source}"
    return f"copy {profile.source} to ~/.config/edgeprune/devices/{profile.name}.yaml and set host: user@host there"


def check(profile: DeviceProfile, host: str | None = None) -> None:
    """A board without a host fails here, before minutes of other runs."""
    resolve_target(profile, host)


def ready(profile: DeviceProfile) -> None:
    """A board is reached when measured; nothing to set up here."""


def classify_ssh_failure(stderr: str, target: SshTarget) -> DeviceError:
    """Turn ssh/scp's stderr (exit 255) into one line saying what went wrong and what to do."""
    text = stderr.strip()
    host = target.destination.split("@")[-1]
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for" in text and "has changed" in text:
        return DeviceError(f"host key of {target} does not match known_hosts (a reinstalled board, or someone "
                           "in between)", f"if the board was reinstalled: ssh-keygen -R {host}, then ssh "
                           f"{target.destination} once and check the fingerprint")
    if "Host key verification failed" in text or "No " in text and "host key is known" in text:
        return DeviceError(f"host key of {target} is not in known_hosts",
                           f"ssh {target.destination} once and check the fingerprint before accepting it, or "
                           "set known_hosts: in the device profile")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return DeviceError(f"SSH login to {target} was refused (key authentication failed)",
                           f"set up key login (ssh-copy-id {target.destination}) or set identity_file: in the "
                           "device profile; password prompts are disabled")
    unreachable = ("Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
                   "Could not resolve hostname", "Name or service not known", "Connection closed",
                   "Connection reset")
    if any(s in text for s in unreachable) or not text:
        reason = text.splitlines()[-1] if text else "no answer"
        return DeviceError(f"cannot reach {target} over SSH ({reason})",
                           f"check the board is on and the address (--host, {HOST_ENV} or the profile's host:)")
    return DeviceError(f"SSH to {target} failed: {text.splitlines()[-1]}", f"try ssh {target.destination} by hand")


class SshSession:
    """ssh/scp calls against one target; every failure becomes a DeviceError."""

    def __init__(self, target: SshTarget, timeout_s: float):
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeviceError(f"the OpenSSH client ({tool}) is not installed here",
                                  "install it: apt-get install openssh-client")
        self.target = target
        self.timeout_s = timeout_s

    def _call(self, argv: list[str], timeout_s: float | None = None) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s or self.timeout_s,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"SSH command to {self.target} timed out after {timeout_s or self.timeout_s:.0f} s",
                              "check the board is responsive; use fewer --runs or a smaller eval set") from None
        if proc.returncode == SSH_ERROR:
            raise classify_ssh_failure(proc.stderr, self.target)
        return proc

    def ssh(self, command: str, timeout_s: float | None = None) -> subprocess.CompletedProcess:
        t = self.target
        return self._call(["ssh", *t.options(), "-p", str(t.port), t.destination, "--", command], timeout_s)

    def put(self, files: list[Path], remote_dir: str) -> None:
        t = self.target
        proc = self._call(["scp", "-q", *t.options(), "-P", str(t.port), *map(str, files),
                           f"{t.destination}:{remote_dir}/"])
        if proc.returncode != 0:
            raise DeviceError(f"copying files to {t}:{remote_dir} failed: {proc.stderr.strip()}",
                              "check free space on the board")

    def get(self, remote_path: str, local_dir: Path) -> Path:
        t = self.target
        proc = self._call(["scp", "-q", *t.options(), "-P", str(t.port), f"{t.destination}:{remote_path}",
                           f"{local_dir}/"])
        if proc.returncode != 0:
            raise DeviceError(f"fetching {remote_path} from {t} failed: {proc.stderr.strip()}",
                              "run the runner by hand on the board")
        return local_dir / Path(remote_path).name


def run(profile: DeviceProfile, model_path: Path, *, eval_npz: Path | None = None, runs: int = 50,
        warmup: int = 5, host: str | None = None, timeout_s: float = 1800) -> dict:
    model_path = check_model_file(Path(model_path))
    target = resolve_target(profile, host)
    session = SshSession(target, timeout_s=CONNECT_TIMEOUT_S + 60)
    where = f"{profile.name} ({target})"

    made = session.ssh("mktemp -d /tmp/edgeprune-bench.XXXXXX")
    remote_dir = made.stdout.strip()
    if made.returncode != 0 or not remote_dir.startswith("/tmp/edgeprune-bench."):
        raise DeviceError(f"cannot make a temp dir on {where}: {made.stderr.strip() or made.stdout.strip()}",
                          "check /tmp on the board is writable")
    try:
        files = [RUNNER_SCRIPT, model_path] + ([Path(eval_npz)] if eval_npz else [])
        note(f"copying {model_path.name} to {target}")
        session.put(files, remote_dir)
        args = runner_args(profile, model_path.name, "result.json", eval_npz=Path(eval_npz).name if eval_npz else None,
                           runs=runs, warmup=warmup, interpreter=interpreter_for(profile, model_path))
        python = shlex.split(profile.python)
        command = f"cd {shlex.quote(remote_dir)} && " + shlex.join([*python, RUNNER_SCRIPT.name, *args])
        note(f"running {model_path.name} on {target} ({runs} runs)")
        proc = session.ssh(command, timeout_s=timeout_s)
        if proc.returncode == 127:
            raise DeviceError(f"python '{profile.python}' not found on {where}",
                              f"install python3 on the board or set python: in {profile.source}")
        if proc.returncode != 0:
            raise runner_failure(proc.returncode, proc.stderr, where)
        with tempfile.TemporaryDirectory(prefix="edgeprune-ssh-") as tmp:
            result = read_result(session.get(f"{remote_dir}/result.json", Path(tmp)), where)
    finally:
        try:
            session.ssh(f"rm -rf {shlex.quote(remote_dir)}")
        except DeviceError:
            pass  # best effort; the original error matters more
    result["ssh_target"] = str(target)
    return annotate(result, profile, model_path)


def runtime_version(profile: DeviceProfile) -> str:
    """A board runs whatever is installed there."""
    return f"{profile.interpreter.tflite} via {profile.python}"


def run_batch(profile: DeviceProfile, paths: list[Path], *, runs: int, warmup: int, host: str | None = None,
              timeout_s: float = 3600) -> list[dict]:
    """Several files, one by one over SSH."""
    return [run(profile, p, runs=runs, warmup=warmup, host=host) for p in paths]
