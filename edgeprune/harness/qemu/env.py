"""Where a built emulated board lives and how to find it: :class:`QemuEnv` and :func:`load_env` (building one: :mod:`.build`)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeprune.errors import DeviceError
from edgeprune.harness.qemu.arches import ArchSpec

GUEST_SITE = "/opt/edgeprune/site"   # guest PYTHONPATH (pip --target)
GUEST_WORK = "/opt/edgeprune/work"   # fixed work dir: fixed paths keep instruction counts identical
PLUGIN_SOURCE = Path(__file__).with_name("insn_count.c")
READY_STAMP = ".ready.json"
BUILD_HINT = "run `sudo make qemu-rootfs` (or, as root, `python -m edgeprune.harness.qemu build --arch {arch}`)"


def cache_root() -> Path:
    """`$EDGEPRUNE_CACHE/qemu`, else `~/.cache/edgeprune/qemu` (outside the repo: a rootfs is ~1 GB)."""
    base = os.environ.get("EDGEPRUNE_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "edgeprune") / "qemu"


def find_qemu(spec: ArchSpec) -> Path | None:
    for name in (spec.qemu_binary, f"{spec.qemu_binary}-static"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def plugin_source_hash() -> str:
    return hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:12]


def build_signature(spec: ArchSpec) -> str:
    """Changes whenever what the build produces for `spec` would change (packages, plugin source)."""
    text = repr(spec) + plugin_source_hash()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class QemuEnv:
    """A built emulated board: a rootfs with guest Python packages, the qemu binary, the plugin."""

    arch: ArchSpec
    root: Path      # cache folder of this arch
    rootfs: Path
    qemu: Path
    plugin: Path    # insn_count .so

    @property
    def guest_prefix(self) -> str:
        """Prepended to guest paths: "" normally, the host rootfs path where stat() ignores -L."""
        return str(self.rootfs) if self.arch.host_paths_in_guest else ""

    @property
    def guest_python(self) -> Path:
        """Host path of the guest's python3 (qemu-user is given a host path)."""
        return self.rootfs / "usr" / "bin" / "python3"

    @property
    def work_dir(self) -> Path:
        """Host path of the guest's fixed work dir."""
        return self.rootfs / GUEST_WORK.lstrip("/")

    @property
    def lock_file(self) -> Path:
        return self.root / "run.lock"


def arch_dir(spec: ArchSpec) -> Path:
    return cache_root() / spec.name


def load_env(spec: ArchSpec) -> QemuEnv:
    """The built env for `spec`; DeviceError (with the command that builds it) when absent or stale."""
    root = arch_dir(spec)
    stamp = root / READY_STAMP
    hint = BUILD_HINT.format(arch=spec.name)
    if not stamp.is_file():
        raise DeviceError(f"the emulated {spec.name} board is not built (no {stamp})", hint)
    ready = json.loads(stamp.read_text())
    if ready.get("signature") != build_signature(spec):
        raise DeviceError(f"the emulated {spec.name} board in {root} is out of date "
                          "(guest packages or the instruction-counter plugin changed)", hint)
    qemu = find_qemu(spec)
    if qemu is None:
        raise DeviceError(f"{spec.qemu_binary} is not installed", "apt-get install qemu-user")
    plugin = Path(ready["plugin"])
    if not plugin.is_file():
        raise DeviceError(f"the instruction-counter plugin {plugin} is missing", hint)
    return QemuEnv(arch=spec, root=root, rootfs=root / "rootfs", qemu=qemu, plugin=plugin)
