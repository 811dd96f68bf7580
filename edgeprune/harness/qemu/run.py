"""Run a Python script inside an emulated board, optionally counting instructions per marked region.

Marker protocol (the guest script's side): ``os.sched_get_priority_max(4242)`` opens a region,
``os.sched_get_priority_max(4243)`` closes it (both raise OSError/EINVAL: wrap in try/except).
The count of a region is the instructions executed by the guest thread that opened it.
"""
from __future__ import annotations

import fcntl
import functools
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.errors import DeviceError
from edgeprune.harness.qemu.env import GUEST_SITE, GUEST_WORK, QemuEnv
from edgeprune.harness.qemu.fake_cpu import install_fake_cpu

MARK_OPEN = 4242
MARK_CLOSE = 4243

# Everything the guest sees of its environment: nothing from the host leaks in (`env -i`).
GUEST_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": GUEST_WORK,
    "LANG": "C.UTF-8",
    "PYTHONPATH": GUEST_SITE,
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",   # never change the rootfs from a run
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass
class QemuResult:
    stdout: str
    stderr: str
    returncode: int
    region_instructions: list[int]  # per closed region, in order: the opening thread's instructions
    cpu: str
    region_instructions_all_threads: list[int] = field(default_factory=list)
    region_mix: list[dict[str, int]] = field(default_factory=list)   # per region: instruction shape -> count
    region_cache_misses: list[list[int]] = field(default_factory=list)  # per region: misses per cache level
    files: dict[str, Path] = field(default_factory=dict)  # files the guest wrote in its work dir (copies)


@functools.lru_cache(maxsize=None)
def cpu_models(qemu: Path) -> tuple[str, ...]:
    """The `-cpu` names this qemu binary accepts."""
    out = subprocess.run([str(qemu), "-cpu", "help"], capture_output=True, text=True, check=False).stdout
    return tuple(line.split()[0] for line in out.splitlines()[1:] if line.strip())


def check_cpu(env: QemuEnv, cpu: str) -> None:
    models = cpu_models(env.qemu)
    if models and cpu not in models:
        raise DeviceError(f"{env.qemu.name} has no CPU model '{cpu}'", f"use one of: {', '.join(models)}")


def guest_env(env: QemuEnv) -> dict[str, str]:
    prefix = env.guest_prefix
    return dict(GUEST_ENV, HOME=prefix + GUEST_WORK, PYTHONPATH=prefix + GUEST_SITE)


def guest_command(env: QemuEnv, cpu: str, argv: list[str], plugin_args: list[str] | None = None) -> list[str]:
    """qemu-user command line running `argv`; argv[0] is the guest python, e.g. /usr/bin/python3."""
    cmd = [str(env.qemu), "-L", str(env.rootfs), "-cpu", cpu, "-0", env.guest_prefix + argv[0]]
    if plugin_args is not None:
        cmd += ["-plugin", ",".join([str(env.plugin), *plugin_args])]
    return cmd + [str(env.rootfs / argv[0].lstrip("/")), *argv[1:]]


@contextmanager
def env_lock(env: QemuEnv):
    """One run (or build step) per env at a time: the work dir and fake cpu files are shared."""
    env.root.mkdir(parents=True, exist_ok=True)
    with open(env.lock_file, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class RegionCounts:
    """What the counter plugin wrote: per closed region, in order."""

    thread: list[int] = field(default_factory=list)       # instructions of the thread that opened it
    all_threads: list[int] = field(default_factory=list)
    mix: list[dict[str, int]] = field(default_factory=list)
    cache_misses: list[list[int]] = field(default_factory=list)


def parse_counts(text: str) -> RegionCounts:
    """The plugin's lines: ``keydef``, ``region``, ``mix`` + ``k`` and ``cache`` (see insn_count.c)."""
    out, keys = RegionCounts(), {}
    bad = "rebuild the qemu env (python -m edgeprune.harness.qemu build)"
    for line in text.splitlines():
        parts = line.split(" ", 2)
        tag = parts[0]
        if tag == "keydef" and len(parts) >= 2:
            keys[int(parts[1])] = parts[2] if len(parts) == 3 else ""
        elif tag == "region" and len(parts) == 3:
            index, thread, everything = line.split()[1:]
            if int(index) != len(out.thread):
                raise DeviceError(f"instruction counter output is out of order at '{line}'", bad)
            out.thread.append(int(thread))
            out.all_threads.append(int(everything))
        elif tag == "mix":
            out.mix.append({})
        elif tag == "k" and out.mix:
            key_id, count = line.split()[1:]
            key = keys.get(int(key_id), "other")
            out.mix[-1][key] = out.mix[-1].get(key, 0) + int(count)
        elif tag == "cache":
            out.cache_misses.append([int(v) for v in line.split()[3:]])
    return out


def _stage_work_dir(env: QemuEnv, script: Path, files) -> set[str]:
    work = env.work_dir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    staged = set()
    for src in [Path(script), *map(Path, files)]:
        if not src.is_file():
            raise DeviceError(f"cannot copy {src} into the emulated board: no such file", "check the path")
        if src.name in staged:
            raise DeviceError(f"two files named {src.name} for the emulated board",
                              "files are copied by basename into one work dir: rename one")
        shutil.copyfile(src, work / src.name)
        staged.add(src.name)
    return staged


def _collect_outputs(work: Path, staged: set[str]) -> dict[str, Path]:
    new = [p for p in sorted(work.rglob("*")) if p.is_file() and str(p.relative_to(work)) not in staged]
    if not new:
        return {}
    out_dir = Path(tempfile.mkdtemp(prefix="edgeprune-qemu-out-"))
    files = {}
    for p in new:
        rel = str(p.relative_to(work))
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        files[rel] = Path(shutil.copy2(p, out_dir / rel))
    return files


def run_python(env: QemuEnv, script: Path, args: list[str], *, cpu: str | None = None,
               files: list[Path] = (), count_instructions: bool = True, cache: str | None = None,
               timeout_s: float = 600) -> QemuResult:
    """Run `script` with the guest's python3 under qemu `-cpu cpu` (default: the arch's board CPU).

    `script` and `files` are copied by basename into the guest work dir (/opt/edgeprune/work), which
    is also the guest's cwd: pass file arguments as bare names.  Files the script writes there come
    back in ``QemuResult.files`` (copies in a new temp dir).  Runs on one env are serialised.
    `cache` (``BoardSpec.cache_arg()``) also simulates the board's data caches in each region.
    """
    cpu = cpu or env.arch.default_cpu
    check_cpu(env, cpu)
    argv = ["/usr/bin/python3", f"{env.guest_prefix}{GUEST_WORK}/{Path(script).name}", *map(str, args)]
    with env_lock(env), tempfile.TemporaryDirectory(prefix="edgeprune-qemu-") as tmp:
        install_fake_cpu(env.rootfs, env.arch.name, cpu)
        staged = _stage_work_dir(env, script, files)
        counts_file = Path(tmp) / "regions.txt"
        plugin_args = None
        if count_instructions:
            plugin_args = [f"out={counts_file}", f"sysno={env.arch.marker_syscall}",
                           f"open={MARK_OPEN}", f"close={MARK_CLOSE}"] + ([f"cache={cache}"] if cache else [])
        cmd = guest_command(env, cpu, argv, plugin_args)
        try:
            proc = subprocess.run(cmd, cwd=env.work_dir, env=guest_env(env), capture_output=True,
                                  text=True, errors="replace", timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"the emulated {env.arch.name} run of {Path(script).name} took over {timeout_s:g} s",
                              "use a smaller model or fewer runs, or raise timeout_s") from None
        counts = RegionCounts()
        if count_instructions and counts_file.is_file():
            counts = parse_counts(counts_file.read_text())
        outputs = _collect_outputs(env.work_dir, staged)
    return QemuResult(stdout=proc.stdout, stderr=proc.stderr, returncode=proc.returncode,
                      region_instructions=counts.thread, cpu=cpu, region_instructions_all_threads=counts.all_threads,
                      region_mix=counts.mix, region_cache_misses=counts.cache_misses, files=outputs)
