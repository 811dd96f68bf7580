"""Device profiles: the shipped YAML validates; broken files give one-line errors; lookup order."""
from __future__ import annotations

from pathlib import Path

import pytest

import edgeprune
from edgeprune.errors import DeviceError
from edgeprune.harness.profiles import get_profile, load_profile_file, load_profiles, profile_dirs

SHIPPED = Path(edgeprune.__file__).resolve().parent.parent / "devices"  # the source: the top-level folder
EXPECTED = {"host", "qemu-aarch64", "qemu-aarch64-a76", "qemu-armv7", "rpi4", "rpi5"}

GOOD = """\
description: test board
kind: ssh
arch: aarch64
cpu: cortex-a55
threads: 2
python: /opt/venv/bin/python
round_to: 4
"""


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Only the shipped folder and a temp EDGEPRUNE_DEVICES folder; an empty HOME."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("EDGEPRUNE_DEVICES", str(user))
    return user


def test_all_shipped_profiles_validate():
    from edgeprune.harness.shipped_devices import SHIPPED_DIR

    assert SHIPPED_DIR == SHIPPED  # a source checkout reads the top-level folder, not a copy in the package
    paths = sorted(SHIPPED.glob("*.yaml"))
    assert {p.stem for p in paths} >= EXPECTED
    for path in paths:
        load_profile_file(path)


def test_shipped_profiles_say_what_they_emulate(isolated):
    profiles = load_profiles()
    assert set(profiles) >= EXPECTED
    assert profiles["qemu-aarch64"].cpu == "cortex-a72" and profiles["qemu-aarch64-a76"].cpu == "cortex-a76"
    assert all(p.emulated for p in profiles.values() if p.kind == "qemu")
    assert profiles["qemu-armv7"].interpreter.tflite == "tflite_runtime"
    assert profiles["rpi4"].kind == profiles["rpi5"].kind == "ssh" and profiles["rpi4"].host is None
    assert not profiles["host"].emulated


def test_user_folder_adds_and_overrides_devices(isolated):
    (isolated / "myboard.yaml").write_text(GOOD)
    (isolated / "host.yaml").write_text("kind: host\narch: x86_64\ncpu: native\nthreads: 4\n")
    profiles = load_profiles()
    assert profiles["myboard"].threads == 2 and profiles["myboard"].source == str(isolated / "myboard.yaml")
    assert profiles["host"].threads == 4  # the user's file wins over the shipped one
    assert get_profile("myboard").cpu == "cortex-a55"
    assert profile_dirs()[0] == SHIPPED and profile_dirs()[-1] == isolated


def test_config_dir_under_home_is_searched(isolated, tmp_path):
    cfg = tmp_path / "home" / ".config" / "edgeprune" / "devices"
    cfg.mkdir(parents=True)
    (cfg / "homeboard.yml").write_text(GOOD)
    assert "homeboard" in load_profiles()


def test_unknown_device_lists_the_known_ones(isolated):
    with pytest.raises(DeviceError, match=r"unknown device 'pi9' \(known: host, qemu-aarch64.*rpi5\)"):
        get_profile("pi9")


def test_profile_by_path(tmp_path):
    f = tmp_path / "lab-pi.yaml"
    f.write_text(GOOD)
    assert get_profile(str(f)).name == "lab-pi"


@pytest.mark.parametrize("text, match", [
    (GOOD.replace("threads: 2", "threads: two"), r"key 'threads': Input should be a valid integer"),
    (GOOD.replace("threads: 2", "threads: 0"), r"key 'threads': must be >= 1"),
    (GOOD.replace("kind: ssh", "kind: usb"), r"key 'kind': Input should be 'host', 'qemu' or 'ssh'"),
    (GOOD.replace("cpu: cortex-a55\n", ""), r"key 'cpu': Field required"),
    (GOOD + "thread: 4\n", r"key 'thread': Extra inputs are not permitted"),
    (GOOD + "interpreter: {tflite: tensorflow}\n", r"key 'interpreter.tflite': Input should be"),
    (GOOD.replace("kind: ssh", "kind: qemu"), r"a qemu profile must say emulated: true"),
    (GOOD + "port: 70000\n", r"key 'port': must be a TCP port"),
    (GOOD + "name: other\n", r"key 'name': 'other' differs from the file name"),
    ("kind: [ssh\n", r"line \d+ not valid YAML"),
    ("- just\n- a list\n", r"expected a mapping of keys, got list"),
])
def test_broken_profile_is_one_line_naming_file_and_key(tmp_path, text, match):
    f = tmp_path / "board.yaml"
    f.write_text(text)
    with pytest.raises(DeviceError, match=match) as e:
        load_profile_file(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_broken_user_profile_fails_only_when_used(isolated):
    (isolated / "bad.yaml").write_text(GOOD.replace("arch: aarch64\n", ""))
    broken = {}
    assert "bad" not in load_profiles(broken=broken) and "bad" in broken
    assert get_profile("host").kind == "host"  # a typo in one profile never blocks the others
    with pytest.raises(DeviceError, match=r"bad\.yaml: key 'arch': Field required"):
        get_profile("bad")


def test_broken_override_hides_the_shipped_profile(isolated):
    (isolated / "host.yaml").write_text("kind: host\narch: x86_64\ncpu: [\n")
    with pytest.raises(DeviceError, match=r"host\.yaml"):
        get_profile("host")
