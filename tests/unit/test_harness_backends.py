"""Device backends: one registry, one dispatch point; a new kind is one module plus one entry."""
import types

import pytest

from edgeprune.errors import DeviceError
from edgeprune.harness import backends, bench
from edgeprune.harness.profiles import DeviceProfile, load_profile_file


@pytest.mark.parametrize("kind", sorted(backends.BACKENDS))
def test_every_backend_has_the_whole_interface(kind):
    module = backends.BACKENDS[kind]
    backends.check_backend(module)
    assert module.KIND == kind


def test_an_incomplete_backend_is_named():
    with pytest.raises(TypeError, match="lacks ready"):
        backends.check_backend(types.SimpleNamespace(__name__="half", KIND="x", EMULATED=False, USES_HOST=False,
                                                     check=print, run=print))


def _fake_backend(calls):
    def run(profile, model_path, *, eval_npz, runs, warmup, host):
        calls.append((profile.name, model_path.name, runs, host))
        return {"device": profile.name, "model_path": str(model_path)}

    def check(profile, host=None):
        if host is None:
            raise DeviceError(f"no serial port for {profile.name}", "pass --host /dev/ttyUSB0")

    return types.SimpleNamespace(__name__="usb_runner", KIND="usb", EMULATED=False, USES_HOST=True,
                                 check=check, ready=lambda profile: None, run=run)


def test_a_registered_backend_serves_profiles_and_bench(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(backends.BACKENDS, "usb", _fake_backend(calls))
    (tmp_path / "mcu.yaml").write_text("kind: usb\narch: armv7m\ncpu: cortex-m7\nhost: /dev/ttyUSB1\n")
    profile = load_profile_file(tmp_path / "mcu.yaml")
    model = tmp_path / "m.tflite"
    model.write_bytes((8).to_bytes(4, "little") + b"TFL3" + bytes(8))  # a flatbuffer header; the fake backend runs nothing
    out = bench.bench([model], [str(tmp_path / "mcu.yaml")], runs=3, warmup=0, host="/dev/ttyUSB0")
    assert out[0]["device"] == profile.name == "mcu"
    assert calls == [("mcu", "m.tflite", 3, "/dev/ttyUSB0")]
    with pytest.raises(DeviceError, match="no serial port for mcu"):
        bench.bench([model], [str(tmp_path / "mcu.yaml")], runs=1, warmup=0)


def test_unregistered_kind_and_inconsistent_profiles_are_refused():
    with pytest.raises(ValueError, match="Input should be 'host', 'qemu' or 'ssh'"):
        DeviceProfile(name="x", kind="usb", arch="a", cpu="c")
    with pytest.raises(ValueError, match="host is not used by kind qemu"):
        DeviceProfile(name="x", kind="qemu", arch="aarch64", cpu="c", emulated=True, host="pi@board")
