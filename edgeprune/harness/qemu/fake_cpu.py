"""A single-core /proc/cpuinfo and /sys/devices/system/cpu inside the rootfs, matching `-cpu`.

qemu-user 7.2 does not emulate these files for arm guests: the guest would read the host's x86
ones, and LiteRT's XNNPACK (pytorch/cpuinfo) segfaults on them.  Because `qemu -L ROOTFS` looks
absolute paths up in ROOTFS first, files written there win.  One core also makes the guest's
os.cpu_count() 1, so thread pools stay single-threaded and counts stay deterministic.
"""
from __future__ import annotations

import shutil
from pathlib import Path

# cpu model -> (MIDR part number, /proc/cpuinfo Features, max MHz).  Features mirror real boards;
# the ISA a guest may use comes from qemu's AT_HWCAP, which follows -cpu.
_AARCH64_CPUS = {
    "cortex-a35": ("0xd04", "fp asimd evtstrm crc32 cpuid", 1200),
    "cortex-a53": ("0xd03", "fp asimd evtstrm crc32 cpuid", 1200),  # Pi 3
    "cortex-a57": ("0xd07", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid", 1900),
    "cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid", 1500),  # Pi 4
    "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                            "asimdrdm lrcpc dcpop asimddp", 2400),  # Pi 5
    "neoverse-n1": ("0xd0c", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                             "asimdrdm lrcpc dcpop asimddp ssbs", 2600),
    "a64fx": ("0x001", "fp asimd evtstrm sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm fcma "
                       "dcpop sve", 2200),
    "max": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                     "lrcpc dcpop asimddp i8mm", 2400),
}
_ARMV7_FEATURES = "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm"
_ARMV7_CPUS = {
    "cortex-a7": ("0xc07", _ARMV7_FEATURES, 900),   # Pi 2
    "cortex-a15": ("0xc0f", _ARMV7_FEATURES, 1500),
    "cortex-a9": ("0xc09", "half thumb fastmult vfp edsp neon vfpv3 tls vfpd32", 1000),
    "cortex-a8": ("0xc08", "half thumb fastmult vfp edsp neon vfpv3 tls vfpd32", 1000),
    "max": ("0xc0f", _ARMV7_FEATURES, 1500),
}


def cpuinfo_text(arch: str, cpu: str) -> str:
    """/proc/cpuinfo for one core of `cpu` (unknown models get a generic entry of the arch)."""
    if arch == "aarch64":
        part, features, _ = _AARCH64_CPUS.get(cpu, _AARCH64_CPUS["cortex-a72"])
        implementer = "0x46" if cpu == "a64fx" else "0x41"
        return (f"processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
                f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x0\n"
                f"CPU part\t: {part}\nCPU revision\t: 0\n\n")
    part, features, _ = _ARMV7_CPUS.get(cpu, _ARMV7_CPUS["cortex-a15"])
    return (f"processor\t: 0\nmodel name\t: ARMv7 Processor rev 0 (v7l)\nBogoMIPS\t: 108.00\n"
            f"Features\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 7\n"
            f"CPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n\n"
            f"Hardware\t: edgeprune emulated board\nRevision\t: 0000\nSerial\t\t: 0000000000000000\n")


def _sysfs_files(arch: str, cpu: str) -> dict[str, str]:
    table = _AARCH64_CPUS if arch == "aarch64" else _ARMV7_CPUS
    mhz = table.get(cpu, next(iter(table.values())))[2]
    cpu0 = "devices/system/cpu/cpu0"
    files = {
        "devices/system/cpu/kernel_max": "0\n",
        "devices/system/cpu/possible": "0\n",
        "devices/system/cpu/present": "0\n",
        "devices/system/cpu/online": "0\n",
        f"{cpu0}/online": "1\n",
        f"{cpu0}/cpufreq/cpuinfo_max_freq": f"{mhz * 1000}\n",
        f"{cpu0}/cpufreq/cpuinfo_min_freq": f"{mhz * 1000}\n",
    }
    for name in ("core_id", "physical_package_id", "cluster_id"):
        files[f"{cpu0}/topology/{name}"] = "0\n"
    for name in ("core_siblings_list", "thread_siblings_list", "cluster_cpus_list", "package_cpus_list",
                 "core_cpus_list"):
        files[f"{cpu0}/topology/{name}"] = "0\n"
    for name in ("core_siblings", "thread_siblings", "cluster_cpus", "package_cpus", "core_cpus"):
        files[f"{cpu0}/topology/{name}"] = "1\n"
    return files


def _own_dir(rootfs: Path, path: Path) -> None:
    """Make `path` a real folder of the rootfs: debootstrap in a container may leave proc -> /proc."""
    if path.is_symlink():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    if not path.resolve().is_relative_to(rootfs.resolve()):
        raise RuntimeError(f"{path} resolves outside the rootfs {rootfs}; refusing to write there")


def install_fake_cpu(rootfs: Path, arch: str, cpu: str) -> bool:
    """Write the files for `cpu` into `rootfs`; returns False when they were already in place."""
    for top in ("proc", "sys"):
        _own_dir(rootfs, rootfs / top)
    proc = rootfs / "proc" / "cpuinfo"
    text = cpuinfo_text(arch, cpu)
    if proc.is_file() and proc.read_text() == text:
        return False
    sys_cpu = rootfs / "sys" / "devices" / "system" / "cpu"
    if sys_cpu.exists():
        shutil.rmtree(sys_cpu)
    for rel, content in _sysfs_files(arch, cpu).items():
        path = rootfs / "sys" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    proc.parent.mkdir(parents=True, exist_ok=True)
    proc.write_text(text)
    return True
