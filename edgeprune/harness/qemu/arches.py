"""The emulated boards edgeprune knows: Debian architecture, qemu binary, guest packages, marker syscall."""
from __future__ import annotations

from dataclasses import dataclass

from edgeprune.errors import DeviceError

DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, so cp311 wheels fit the guest
GUEST_PYTHON_VERSION = "3.11"


@dataclass(frozen=True)
class ArchSpec:
    name: str                       # what users type: aarch64 | armv7
    debian_arch: str                # debootstrap --arch
    qemu_binary: str                # qemu-user binary name
    machine: str                    # platform.machine() inside the guest
    marker_syscall: int             # sched_get_priority_max in this guest ABI
    default_cpu: str
    debian_packages: tuple[str, ...]  # debootstrap --include
    pip_platforms: tuple[str, ...]
    pip_requirements: tuple[str, ...]
    pip_no_deps: bool               # armv7: numpy comes from Debian, pip must not look for it
    # qemu-user 7.2 skips the -L lookup for statx, which 32-bit glibc 2.36 uses for every stat():
    # such a guest must name its files by their host paths (ROOTFS/...), which resolve either way.
    host_paths_in_guest: bool = False


ARCHES: dict[str, ArchSpec] = {
    "aarch64": ArchSpec(
        name="aarch64",
        debian_arch="arm64",
        qemu_binary="qemu-aarch64",
        machine="aarch64",
        marker_syscall=125,         # asm-generic/unistd.h: __NR_sched_get_priority_max
        default_cpu="cortex-a72",
        debian_packages=("python3",),
        # ai-edge-litert 2.3.0 ships only manylinux_2_27/2_28 aarch64 wheels: name those tags too.
        pip_platforms=("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                       "manylinux2014_aarch64"),
        pip_requirements=("numpy==2.4.6", "ai-edge-litert==2.3.0", "onnxruntime==1.32.0"),
        pip_no_deps=False,
    ),
    "armv7": ArchSpec(
        name="armv7",
        debian_arch="armhf",
        qemu_binary="qemu-arm",
        machine="armv7l",
        marker_syscall=159,         # arch/arm/tools/syscall.tbl (EABI): sched_get_priority_max
        default_cpu="cortex-a15",
        # PyPI has no armv7 numpy wheels; Debian's numpy 1.24 suits tflite-runtime 2.14 (numpy<2).
        debian_packages=("python3", "python3-numpy"),
        pip_platforms=("manylinux_2_34_armv7l", "manylinux_2_31_armv7l", "manylinux2014_armv7l",
                       "linux_armv7l"),
        pip_requirements=("tflite-runtime==2.14.0",),  # no onnxruntime armv7 wheel exists on PyPI
        pip_no_deps=True,
        host_paths_in_guest=True,
    ),
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHES[name]
    except KeyError:
        raise DeviceError(f"no emulated architecture '{name}'",
                          f"use one of: {', '.join(ARCHES)}") from None
