"""Run independent trials: in this process, or on Ray (a local instance or a cluster).

A *trial* is a top-level function of (input files, settings) that writes its result JSON into the
run directory and returns it.  Models travel as file paths, never as live objects, so the same
trial runs unchanged in this process or in a Ray worker on another machine.  This module only
dispatches; Ray does the scheduling (no process pool of our own).  Both executors show n of N,
ETA and a line per finished trial through :mod:`edgeprune.progress`.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Callable, Iterable

from edgeprune import _env  # noqa: F401  (TensorFlow's log settings, in a Ray worker too, before it loads there)
from edgeprune import progress
from edgeprune.errors import EdgepruneError

KINDS = ("inprocess", "ray")
_joined: str | None = None  # the address this process's Ray was initialised with, by this module


class InProcessExecutor:
    """Runs trials one after another in this process (the default: no extra dependency)."""

    kind = "inprocess"

    def map(self, fn: Callable[..., dict], kwargs_list: Iterable[dict], *, label: str = "trials",
            describe: Callable[[dict, list], str] | None = None) -> list:
        jobs = list(kwargs_list)
        with TrialProgress(label, len(jobs), describe) as shown:
            return [shown.done(fn(**kw)) for kw in jobs]

    def describe(self) -> dict:
        return {"kind": self.kind, "workers": 1}


def _ray_trial(fn: Callable[..., dict], kwargs: dict, threads: int) -> dict:
    """Body of one Ray task: cap TensorFlow's threads to the task's CPUs, then run the trial.

    Ray does not limit TensorFlow's thread pools; without this every task would use all cores.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return fn(**kwargs)


class RayExecutor:
    """Submits each trial as a Ray task with ``num_cpus`` CPUs and waits for all of them."""

    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int = 1):
        ray = import_ray()
        if address not in (None, "auto") and not address.startswith("ray://"):
            check_reachable(address)  # Ray itself retries a dead address for minutes
        global _joined
        if ray.is_initialized() and _joined != (address or "local"):
            ray.shutdown()  # this process joined another instance before; a new address means that one
        if not ray.is_initialized():
            env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
            if address is None:
                # a local instance sees this machine's files: give its workers the driver's import path,
                # so trials defined in the caller's own modules (scripts, tests) import there too
                env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
            try:
                # no address: always a fresh local instance ("local"), never whatever cluster a stale
                # /tmp/ray/ray_current_cluster or RAY_ADDRESS points at (pass "auto" for that)
                ray.init(address=address or "local", ignore_reinit_error=True, log_to_driver=False,
                         logging_level=logging.WARNING, runtime_env={"env_vars": env})
            except (ConnectionError, RuntimeError, TimeoutError) as e:
                raise _unreachable(address, str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__) from None
            _joined = address or "local"
        self.ray = ray
        self.address = address
        self.num_cpus = int(num_cpus)
        self._task = ray.remote(num_cpus=self.num_cpus)(_ray_trial)

    def map(self, fn: Callable[..., dict], kwargs_list: Iterable[dict], *, label: str = "trials",
            describe: Callable[[dict, list], str] | None = None) -> list:
        refs = [self._task.remote(fn, kw, self.num_cpus) for kw in kwargs_list]
        results, pending = {}, list(refs)
        with TrialProgress(label, len(refs), describe) as shown:
            while pending:  # in the order trials finish, so progress moves as they do
                ready, pending = self.ray.wait(pending, num_returns=1)
                results[ready[0]] = shown.done(self.ray.get(ready[0]))
        return [results[r] for r in refs]

    def describe(self) -> dict:
        return {"kind": self.kind, "address": self.address or "local",
                "cluster_cpus": self.ray.cluster_resources().get("CPU"), "cpus_per_trial": self.num_cpus}


class TrialProgress:
    """n of N trials, elapsed, ETA and the caller's line per finished trial (edgeprune.progress).

    `describe(result, results_so_far)` turns a trial's result into that line, e.g. its accuracy
    and the best so far; without it the line is just the count.
    """

    def __init__(self, label: str, total: int, describe: Callable[[dict, list], str] | None):
        self.label, self.total, self.describe = label, total, describe
        self.results: list = []

    def __enter__(self):
        self.task = progress.open_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc):
        progress.close_task(self.task)

    def done(self, result: dict) -> dict:
        self.results.append(result)
        text = f"{len(self.results)}/{self.total}"
        if self.describe is not None:
            text += "  " + self.describe(result, self.results)
        self.task.report(text, completed=len(self.results))
        return result


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
        # Ray is optional (the 'ray' extra): only the Ray executor needs it
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

