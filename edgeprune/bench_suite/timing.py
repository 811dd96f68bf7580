"""Latency and instruction counts for all variants of a group, interleaved so drift hits all alike."""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError


def usable_devices(devices) -> tuple[list, list[str]]:
    """(profiles that can run now, notes about the ones skipped): emulated boards need a built rootfs."""
    from edgeprune.harness.backends import backend_for
    from edgeprune.harness.profiles import get_profile

    profiles, notes = [], []
    for name in devices:
        profile = get_profile(name)
        try:
            backend_for(profile).ready(profile)
        except EdgepruneError as err:
            build = " (build it with `make qemu-rootfs`)" if profile.emulated else ""
            notes.append(f"{name} skipped: {err.problem}{build}")
            continue
        profiles.append(profile)
    return profiles, notes


def rep_order(names: list[str], rep: int) -> list[str]:
    """Rotate (and reverse every other repetition) so no variant always runs first or last."""
    k = rep % len(names)
    order = names[k:] + names[:k]
    return order[::-1] if rep % 2 else order


def time_variants(files: dict[str, Path], profile, *, runs: int, reps: int, warmup: int) -> dict[str, dict]:
    """{variant: {p50_ms, p90_ms, mean_ms, samples, [instructions_per_inference]}} on one device."""
    from edgeprune.harness.backends import run_on_device

    lat: dict[str, list[float]] = {v: [] for v in files}
    instr: dict[str, list[int]] = {v: [] for v in files}
    for rep in range(reps):
        for variant in rep_order(list(files), rep):
            r = run_on_device(profile, Path(files[variant]), eval_npz=None, runs=runs, warmup=warmup)
            lat[variant].extend(float(t) for t in r["latencies_ms"])
            instr[variant].extend(int(c) for c in r.get("instructions_all") or [])
    out = {}
    for variant, ms in lat.items():
        arr = np.asarray(ms)
        row = {"p50_ms": float(np.percentile(arr, 50)), "p90_ms": float(np.percentile(arr, 90)),
               "mean_ms": float(arr.mean()), "samples": int(arr.size)}
        if instr[variant]:
            row["instructions_per_inference"] = int(statistics.median(instr[variant]))
            row["instructions_spread"] = int(max(instr[variant]) - min(instr[variant]))
        out[variant] = row
    return out
