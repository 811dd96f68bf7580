"""Device profiles: YAML files that say what a target is and how to reach it.

Profiles are read from, in order, the shipped ``devices/`` folder (top level of the source; ``edgeprune/devices/`` in the wheel),
``~/.config/edgeprune/devices/`` and each folder in ``EDGEPRUNE_DEVICES`` (``os.pathsep``-separated).
A later folder's file overrides an earlier one of the same name, so a user can redefine a shipped
device as well as add one, by dropping a YAML file in.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from edgeprune.errors import DeviceError
from edgeprune.harness.backends import BACKENDS
from edgeprune.harness.board_time import BoardSpec, load_core
from edgeprune.harness.shipped_devices import SHIPPED_DIR

PROFILE_SUFFIXES = (".yaml", ".yml")


class InterpreterChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tflite: Literal["ai_edge_litert", "tflite_runtime"] = "ai_edge_litert"
    onnx: Optional[Literal["onnxruntime"]] = "onnxruntime"  # null: the device cannot run .onnx


class DeviceProfile(BaseModel):
    """One target.  ``kind`` names its backend (:mod:`edgeprune.harness.backends`); ``cpu`` is the
    model name, for ``kind: qemu`` passed to ``qemu -cpu``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    kind: str
    arch: str
    cpu: str
    threads: int = 1
    interpreter: InterpreterChoice = InterpreterChoice()
    python: str = "python3"
    round_to: int = 1
    emulated: bool = False
    # ssh only: user@host (RPI_HOST or --host override it), port, trust and login files
    host: Optional[str] = None
    port: int = 22
    known_hosts: Optional[str] = None
    identity_file: Optional[str] = None
    # emulated only: the real board this profile stands for; its runs are ranked by estimated board time
    board: Optional[BoardSpec] = None
    source: Optional[str] = None  # the file this profile came from (filled in by the loader)

    @property
    def stands_for(self) -> str:
        """What the device is, in words: "Raspberry Pi 4 Model B (emulated Cortex-A72)" for an emulated
        board with a board model, else the description ("Raspberry Pi 4 over SSH", "This machine, native")."""
        if self.board is not None:
            return f"{self.board.name} (emulated {load_core(self.board.core).name})"
        return self.description or self.name

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in BACKENDS:
            kinds = [f"'{k}'" for k in BACKENDS]
            raise ValueError("Input should be " + " or ".join([", ".join(kinds[:-1]), kinds[-1]] if kinds[:-1] else kinds))
        return v

    @field_validator("threads", "round_to")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 < v < 65536:
            raise ValueError("must be a TCP port (1-65535)")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        backend = BACKENDS[self.kind]
        if backend.EMULATED and not self.emulated:
            raise ValueError(f"a {self.kind} profile must say emulated: true")
        if not backend.EMULATED and self.emulated:
            raise ValueError(f"emulated: true only makes sense for an emulated kind, not {self.kind}")
        if self.board is not None and not self.emulated:
            raise ValueError("board is for emulated profiles (a real device is timed, not estimated)")
        if not backend.USES_HOST and self.host:
            raise ValueError(f"host is not used by kind {self.kind}")
        return self


def profile_dirs() -> list[Path]:
    """The folders searched for profiles, lowest priority first."""
    dirs = [SHIPPED_DIR,
            Path.home() / ".config" / "edgeprune" / "devices"]
    extra = os.environ.get("EDGEPRUNE_DEVICES", "")
    dirs += [Path(d).expanduser() for d in extra.split(os.pathsep) if d.strip()]
    return dirs


def _one_line(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(profile)"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"key '{key}': {msg}")
    return f"bad device profile {path}: " + "; ".join(parts)


def load_profile_file(path: Path) -> DeviceProfile:
    """Read and validate one YAML profile; any problem is one DeviceError line naming file and key."""
    path = Path(path)
    fix = f"fix the file (see {SHIPPED_DIR / 'host.yaml'} for the fields)"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise DeviceError(f"cannot read device profile {path}: {e.strerror}", fix) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DeviceError(f"bad device profile {path}:{where} not valid YAML ({getattr(e, 'problem', e)})", fix) from None
    if not isinstance(data, dict):
        raise DeviceError(f"bad device profile {path}: expected a mapping of keys, got {type(data).__name__}", fix)
    data.setdefault("name", path.stem)
    if data["name"] != path.stem:
        raise DeviceError(f"bad device profile {path}: key 'name': '{data['name']}' differs from the file name",
                          f"rename the file to {data['name']}{path.suffix} or change name")
    if "source" in data:
        raise DeviceError(f"bad device profile {path}: key 'source': is set by edgeprune", "remove it")
    try:
        return DeviceProfile(**data, source=str(path))
    except ValidationError as e:
        raise DeviceError(_one_line(path, e), fix) from None


def load_profiles(dirs: list[Path] | None = None, broken: dict[str, DeviceError] | None = None) -> dict[str, DeviceProfile]:
    """The valid profiles by name.  A file that does not validate never blocks the others: its error is
    put into `broken` (by file name), and raised only when that device is asked for (:func:`get_profile`)."""
    profiles: dict[str, DeviceProfile] = {}
    broken = {} if broken is None else broken
    for d in profile_dirs() if dirs is None else dirs:
        if not d.is_dir():
            continue
        for path in sorted(p for p in d.iterdir() if p.suffix in PROFILE_SUFFIXES):
            try:
                profile = load_profile_file(path)
            except DeviceError as e:  # a later folder's broken file hides an earlier good one of that name
                profiles.pop(path.stem, None)
                broken[path.stem] = e
                continue
            broken.pop(profile.name, None)
            profiles[profile.name] = profile
    return dict(sorted(profiles.items()))


def get_profile(name: str) -> DeviceProfile:
    """A profile by name, or by path to a YAML file (``--device ./board.yaml``)."""
    if name.endswith(PROFILE_SUFFIXES) and Path(name).is_file():
        return load_profile_file(Path(name))
    broken: dict[str, DeviceError] = {}
    profiles = load_profiles(broken=broken)
    if name in broken:
        raise broken[name]
    if name not in profiles:
        known = ", ".join(profiles) or "none"
        raise DeviceError(f"unknown device '{name}' (known: {known})",
                          "pick one of those or add a YAML profile to ~/.config/edgeprune/devices/")
    return profiles[name]
