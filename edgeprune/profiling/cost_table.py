"""The on-disk lookup table of measured costs: one JSON file per (device, runtime, metric).

Keys are op-unit signatures (:func:`edgeprune.profiling.tflite_ops.unit_signature`), whole-model
file hashes (``model:<sha>``) and the per-invoke overhead (``empty``).  The device key names the
profile, its CPU model, threads, interpreter and the runtime version, so a table never mixes
counts from an A72 with an A76, or from two LiteRT versions.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from edgeprune import fileio
from edgeprune.device_metric import BOARD_TIME, INSTRUCTIONS, device_metric
from edgeprune.harness import backends
from edgeprune.harness.profiles import DeviceProfile

TABLE_SCHEMA_VERSION = 1
EMPTY_KEY = "empty"


def cost_dir() -> Path:
    """`$EDGEPRUNE_COST_DIR`, else `$EDGEPRUNE_CACHE/cost`, else `~/.cache/edgeprune/cost`."""
    if os.environ.get("EDGEPRUNE_COST_DIR"):
        return Path(os.environ["EDGEPRUNE_COST_DIR"]).expanduser()
    base = os.environ.get("EDGEPRUNE_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "edgeprune") / "cost"


def metric_for(profile: DeviceProfile) -> str:
    """The table's name for the device metric (:func:`edgeprune.device_metric.device_metric`):
    emulated boards give the estimated board time (``board_ms``, deterministic; instructions where the
    profile has no board model); real ones time it (p50 after warm-up, ms)."""
    metric = device_metric(profile.emulated, profile.board is not None)
    return "board_ms" if metric is BOARD_TIME else "instructions" if metric is INSTRUCTIONS else "latency_ms"


def runtime_version(profile: DeviceProfile) -> str:
    """The interpreter version the device runs, as its backend says (:func:`edgeprune.harness.backends.runtime_version`)."""
    return backends.runtime_version(profile)


def device_key(profile: DeviceProfile) -> dict:
    return {"device": profile.name, "kind": profile.kind, "arch": profile.arch, "cpu": profile.cpu,
            "threads": profile.threads, "interpreter": profile.interpreter.tflite,
            "runtime": runtime_version(profile), "metric": metric_for(profile)}


class CostTable:
    """Measured cost per key for one device key; reads and writes are locked (several processes may share it)."""

    def __init__(self, profile: DeviceProfile, root: Path | None = None):
        self.profile = profile
        self.key = device_key(profile)
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:12]
        self.path = (root or cost_dir()) / f"{profile.name}-{digest}.json"
        self.metric = self.key["metric"]
        self.entries: dict[str, dict] = self._read()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        if data.get("schema_version") != TABLE_SCHEMA_VERSION or data.get("device_key") != self.key:
            return {}
        return data.get("entries", {})

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> float | None:
        e = self.entries.get(key)
        return None if e is None else float(e["cost"])

    def missing(self, keys) -> list[str]:
        return [k for k in dict.fromkeys(keys) if k not in self.entries]

    def add(self, values: dict[str, dict]) -> None:
        """Merge ``{key: {"cost": ..., ...}}`` into the file (re-read under the lock, so nothing is lost)."""
        with self._locked():
            self.entries = {**self._read(), **self.entries}
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for k, v in values.items():
                self.entries[k] = {**v, "measured_at": stamp}
            fileio.write_text(self.path, json.dumps({"schema_version": TABLE_SCHEMA_VERSION, "device_key": self.key,
                                                     "entries": self.entries}, indent=0, sort_keys=True))
