"""The emulated-board harness's pure parts: no emulator or rootfs needed (so not marked qemu)."""
import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness.qemu import ensure_env
from edgeprune.harness.qemu.arches import ARCHES, get_arch
from edgeprune.harness.qemu.fake_cpu import cpuinfo_text, install_fake_cpu
from edgeprune.harness.qemu.run import parse_counts


def test_marker_syscall_numbers_per_abi():
    # sched_get_priority_max: asm-generic table (aarch64) vs arm EABI table.
    assert get_arch("aarch64").marker_syscall == 125
    assert get_arch("armv7").marker_syscall == 159


def test_unknown_arch_names_the_choices():
    with pytest.raises(DeviceError, match="aarch64, armv7"):
        get_arch("riscv64")


def test_missing_env_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path))
    with pytest.raises(DeviceError) as err:
        ensure_env("aarch64", build=False)
    assert "not built" in err.value.problem and "make qemu-rootfs" in err.value.fix


def test_rootfs_build_refuses_without_root(tmp_path, monkeypatch):
    from edgeprune.harness.qemu import build

    monkeypatch.setenv("EDGEPRUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(build.os, "geteuid", lambda: 1000)
    with pytest.raises(DeviceError) as err:
        build.build_rootfs(ARCHES["aarch64"], tmp_path / "aarch64")
    assert "needs root" in err.value.problem and "sudo make qemu-rootfs" in err.value.fix


def test_missing_tools_name_the_apt_packages(monkeypatch):
    from edgeprune.harness.qemu import build

    monkeypatch.setattr(build.shutil, "which", lambda cmd: None if cmd in ("debootstrap", "gcc") else "/bin/x")
    with pytest.raises(DeviceError) as err:
        build._require_tools({"debootstrap": "debootstrap", "gcc": "gcc", "tar": "tar"})
    assert err.value.fix == "apt-get install debootstrap gcc"


def test_parse_counts_keeps_region_order():
    counts = parse_counts("region 0 10 12\nregion 1 20 25\nunclosed\n")
    assert (counts.thread, counts.all_threads) == ([10, 20], [12, 25])
    with pytest.raises(DeviceError, match="out of order"):
        parse_counts("region 1 10 12\n")


def test_parse_counts_reads_each_region_mix_and_cache_misses():
    text = ("keydef 0 fmla v.4s, v.4s, v.s[0]\nkeydef 1 ldr q, [x], #\n"
            "region 0 7 7\nmix 0 2\nk 0 5\nk 1 2\ncache 0 2 2 1\n"
            "region 1 5 5\nmix 1 1\nk 0 5\nk 8191 3\ncache 1 2 0 0\n")
    counts = parse_counts(text)
    assert counts.mix == [{"fmla v.4s, v.4s, v.s[0]": 5, "ldr q, [x], #": 2},
                          {"fmla v.4s, v.4s, v.s[0]": 5, "other": 3}]  # a key past the plugin's table: "other"
    assert counts.cache_misses == [[2, 1], [0, 0]]


def test_fake_cpu_follows_the_cpu_model(tmp_path):
    assert "CPU part\t: 0xd08" in cpuinfo_text("aarch64", "cortex-a72")
    assert "asimddp" in cpuinfo_text("aarch64", "cortex-a76")
    assert "CPU architecture: 7" in cpuinfo_text("armv7", "cortex-a15")
    (tmp_path / "proc").symlink_to("/proc")  # what debootstrap leaves in a container
    assert install_fake_cpu(tmp_path, "aarch64", "cortex-a72") is True
    assert not (tmp_path / "proc").is_symlink()
    assert (tmp_path / "sys/devices/system/cpu/online").read_text() == "0\n"
    assert install_fake_cpu(tmp_path, "aarch64", "cortex-a72") is False  # already in place
