"""Run independent trials: in this process, or on Ray (a local instance or a cluster).

A *trial* is a top-level function of (input files, settings) that writes its result JSON into the
run directory and returns it.  Models travel as file paths, never as live objects, so the same
trial runs unchanged in this process or in a Ray worker on another machine.  This module only
dispatches; Ray does the scheduling (no process pool of our own).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Callable, Iterable

from edgeprune.errors import EdgepruneError

KINDS = ("inprocess", "ray")


class InProcessExecutor:
    """Runs trials one after another in this process (the default: no extra dependency)."""

    kind = "inprocess"

    def map(self, fn: Callable[..., dict], kwargs_list: Iterable[dict]) -> list:
        return [fn(**kw) for kw in kwargs_list]

    def describe(self) -> dict:
        return {"kind": self.kind, "workers": 1}


def _ray_trial(fn: Callable[..., dict], kwargs: dict, threads: int) -> dict:
    """Body of one Ray task: cap TensorFlow's threads to the task's CPUs, then run the trial.

    Ray does not limit TensorFlow's thread pools; without this every task would use all cores.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import edgeprune  # noqa: F401  (sets up tf-keras before TensorFlow loads in the worker)

    return fn(**kwargs)


class RayExecutor:
    """Submits each trial as a Ray task with ``num_cpus`` CPUs and waits for all of them."""

    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int = 1):
        ray = import_ray()
        if not ray.is_initialized():
            env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            if address is None:
                # a local instance sees this machine's files: give its workers the driver's import path,
                # so trials defined in the caller's own modules (scripts, tests) import there too
                env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
            if address not in (None, "auto") and not address.startswith("ray://"):
                check_reachable(address)  # Ray itself retries a dead address for minutes
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING,
                         runtime_env={"env_vars": env})
            except (ConnectionError, RuntimeError, TimeoutError) as e:
                raise _unreachable(address, str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__) from None
        self.ray = ray
        self.address = address
        self.num_cpus = int(num_cpus)
        self._task = ray.remote(num_cpus=self.num_cpus)(_ray_trial)

    def map(self, fn: Callable[..., dict], kwargs_list: Iterable[dict]) -> list:
        refs = [self._task.remote(fn, kw, self.num_cpus) for kw in kwargs_list]
        return list(self.ray.get(refs))

    def describe(self) -> dict:
        return {"kind": self.kind, "address": self.address or "local",
                "cluster_cpus": self.ray.cluster_resources().get("CPU"), "cpus_per_trial": self.num_cpus}


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, naming the address, when nothing listens at ``host:port``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise EdgepruneError(f"Ray address '{address}' is not host:port",
                             "pass --ray-address auto, or the address `ray start --head` printed (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise _unreachable(address, e.strerror or type(e).__name__) from None


def _unreachable(address: str | None, why: str) -> EdgepruneError:
    return EdgepruneError(f"cannot reach a Ray cluster at {address or 'a local instance'} ({why})",
                          "start one with `ray start --head` and pass the address it printed, "
                          "or --ray-address auto on a cluster node (omit it for a local instance)")


def import_ray():
    try:
        import ray
    except ImportError:
        raise EdgepruneError("the Ray executor needs the 'ray' package, which is not installed",
                             "pip install 'edgeprune[ray]'") from None
    return ray


def get_executor(kind: str = "inprocess", address: str | None = None, num_cpus: int = 1):
    """An object with ``map(fn, list_of_kwargs) -> list of results`` (in input order).

    kind: ``inprocess`` (default) or ``ray``; for Ray, `address` joins a running cluster
    (``ray start --head`` / ``RAY_ADDRESS``), None starts a local instance.
    """
    if kind in (None, "", "inprocess"):
        return InProcessExecutor()
    if kind == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise EdgepruneError(f"unknown executor '{kind}'", f"use one of {', '.join(KINDS)}")

