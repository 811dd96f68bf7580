"""Emulated ARM boards: qemu-user + a cached Debian rootfs + a deterministic instruction counter.

    env = ensure_env("aarch64")            # builds once (needs root), then cached
    res = run_python(env, script, args, cpu="cortex-a72", files=[model])
    res.region_instructions                # one count per marker region (see run.py)

Build from the shell with ``python -m edgeprune.harness.qemu build [--arch aarch64|armv7]``.
"""
from edgeprune.harness.qemu.build import ensure_env
from edgeprune.harness.qemu.env import QemuEnv
from edgeprune.harness.qemu.run import MARK_CLOSE, MARK_OPEN, QemuResult, run_python

__all__ = ["QemuEnv", "QemuResult", "ensure_env", "run_python", "MARK_OPEN", "MARK_CLOSE"]
