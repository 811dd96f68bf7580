"""Device backends: how a profile's ``kind`` is reached.  The one place that knows the kinds.

A backend is a module with these names (see :func:`check_backend`):

    KIND       the profile ``kind:`` it serves
    EMULATED   whether its profiles must say ``emulated: true``
    USES_HOST  whether its profiles may name a ``host:`` (and ``--host`` applies)
    check(profile, host)   raise DeviceError when the device cannot be reached as configured
                           (cheap; run before any measurement)
    ready(profile)         raise DeviceError when the device cannot run now without a long set-up
                           (a recipe may skip such a device)
    run(profile, model_path, *, eval_npz, runs, warmup, host) -> the runner's result dict
    run_batch(profile, paths, *, runs, warmup, host, timeout_s) -> one result dict per file, measured
                           together where the kind can (one runner process, one emulator start)
    runtime_version(profile) -> the interpreter version the device runs (part of its cost-table key)

Adding a backend is one module plus one entry in :data:`BACKENDS`.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from edgeprune.errors import DeviceError
from edgeprune.harness import host_runner, qemu_runner, ssh_runner
from edgeprune.progress import note

REQUIRED = {"KIND": str, "EMULATED": bool, "USES_HOST": bool, "check": callable, "ready": callable, "run": callable,
            "run_batch": callable, "runtime_version": callable}

BACKENDS: dict[str, ModuleType] = {b.KIND: b for b in (host_runner, qemu_runner, ssh_runner)}


def check_backend(module: ModuleType) -> None:
    """Raise TypeError naming what a backend module lacks."""
    for name, kind in REQUIRED.items():
        value = getattr(module, name, None)
        ok = callable(value) if kind is callable else isinstance(value, kind)
        if not ok:
            raise TypeError(f"device backend {module.__name__} lacks {name}")


def backend_for(profile) -> ModuleType:
    try:
        return BACKENDS[profile.kind]
    except KeyError:
        raise DeviceError(f"device {profile.name}: unknown kind {profile.kind}",
                          f"use one of {', '.join(BACKENDS)}") from None


def runtime_version(profile) -> str:
    """The interpreter version `profile`'s device runs (host: installed; emulated: the guest's pinned packages)."""
    return backend_for(profile).runtime_version(profile)


def deterministic_cost(profile) -> bool:
    """Whether the device's cost repeats exactly (an emulated board counts it) rather than being timed."""
    return backend_for(profile).EMULATED


def run_on_device(profile, model_path: Path, *, eval_npz: Path | None, runs: int, warmup: int,
                  host: str | None = None) -> dict:
    """Measure one model file on one device with the backend for the profile's kind."""
    note(f"{Path(model_path).name} on {profile.name}" + (" (emulated: minutes)" if profile.emulated else ""))
    return backend_for(profile).run(profile, Path(model_path), eval_npz=eval_npz, runs=runs, warmup=warmup,
                                     host=host)
