"""Build an emulated board once and cache it: rootfs, guest packages, fake cpu files, counter plugin.

Each step leaves a stamp, so a second build returns at once and an interrupted one resumes.
The rootfs is made with `debootstrap --foreign` and the downloaded .debs are unpacked by hand
(`dpkg-deb | tar`): the second stage would need binfmt_misc, which containers usually lack, and
an unconfigured but unpacked python3 runs fine under qemu-user.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from edgeprune import progress
from edgeprune.errors import DeviceError
from edgeprune.harness.qemu.arches import DEBIAN_SUITE, GUEST_PYTHON_VERSION, ArchSpec, get_arch
from edgeprune.harness.qemu.env import (GUEST_SITE, PLUGIN_SOURCE, READY_STAMP, QemuEnv, arch_dir,
                                        build_signature, cache_root, find_qemu, load_env,
                                        plugin_source_hash)
from edgeprune.harness.qemu.fake_cpu import install_fake_cpu
from edgeprune.harness.qemu.run import env_lock, guest_command, guest_env
from edgeprune.progress import echo, note

DEFAULT_MIRROR = "http://deb.debian.org/debian"
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives",
        "debootstrap")


def _say(spec: ArchSpec, message: str) -> None:
    note(message)
    echo(f"[qemu {spec.name}] {message}")


def _run(cmd: list[str], what: str, fix: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise DeviceError(f"{what} failed ({' '.join(map(str, cmd[:3]))} …: {tail[0]})", fix)
    return proc


def _require_tools(tools: dict[str, str]) -> None:
    """`tools`: command -> Debian package providing it."""
    missing = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if missing:
        raise DeviceError(f"building the emulated board needs {', '.join(missing)}",
                          f"apt-get install {' '.join(missing)}")


def _require_qemu(spec: ArchSpec) -> Path:
    qemu = find_qemu(spec)
    if qemu is None:
        raise DeviceError(f"{spec.qemu_binary} is not installed", "apt-get install qemu-user")
    return qemu


def _stamp_ok(stamp: Path, signature: str) -> bool:
    return stamp.is_file() and stamp.read_text() == signature


# --- rootfs -----------------------------------------------------------------------------------------

def build_rootfs(spec: ArchSpec, root: Path) -> Path:
    rootfs = root / "rootfs"
    stamp = root / ".rootfs.done"
    signature = f"{DEBIAN_SUITE} {spec.debian_arch} {','.join(spec.debian_packages)}"
    if _stamp_ok(stamp, signature) and rootfs.is_dir():
        return rootfs
    if os.geteuid() != 0:
        raise DeviceError(f"building the {spec.name} rootfs needs root (debootstrap)",
                          "run as root or `sudo make qemu-rootfs`")
    _require_tools({"debootstrap": "debootstrap", "dpkg-deb": "dpkg", "tar": "tar"})
    mirror = os.environ.get("EDGEPRUNE_DEBIAN_MIRROR", DEFAULT_MIRROR)
    partial = root / "rootfs.partial"
    for old in (partial, rootfs):
        if old.exists():
            shutil.rmtree(old)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    _say(spec, f"debootstrap {DEBIAN_SUITE} {spec.debian_arch} (minbase + {', '.join(spec.debian_packages)}) "
               f"from {mirror} …")
    _run(["debootstrap", "--foreign", f"--arch={spec.debian_arch}", "--variant=minbase",
          f"--include={','.join(spec.debian_packages)}", DEBIAN_SUITE, str(partial), mirror],
         "debootstrap", f"check network access to {mirror} (or set EDGEPRUNE_DEBIAN_MIRROR)")
    debs = sorted((partial / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    _say(spec, f"unpacking {len(debs)} packages …")
    for deb in debs:
        # --keep-directory-symlink: /lib etc. are merged-/usr symlinks that must stay symlinks.
        _run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2" -f -',
              "unpack", str(deb), str(partial)], f"unpacking {deb.name}", "delete the cache folder and rebuild")
    for rel in TRIM:
        shutil.rmtree(partial / rel, ignore_errors=True)
    if not (partial / "usr" / "bin" / "python3").exists():
        raise DeviceError(f"the {spec.name} rootfs has no /usr/bin/python3 after unpacking",
                          f"delete {root} and rebuild")
    partial.rename(rootfs)
    stamp.write_text(signature)
    _say(spec, f"rootfs ready in {time.monotonic() - t0:.0f} s")
    return rootfs


def link_alternatives(rootfs: Path) -> None:
    """What update-alternatives would have done for BLAS/LAPACK (Debian's numpy links libblas.so.3)."""
    for lib in sorted(rootfs.glob("usr/lib/*/*/lib*.so.3")):
        if lib.parent.name in ("blas", "lapack", "openblas-pthread"):
            link = lib.parent.parent / lib.name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(f"{lib.parent.name}/{lib.name}")


# --- guest Python packages --------------------------------------------------------------------------

def install_guest_packages(spec: ArchSpec, env: QemuEnv) -> None:
    target = env.rootfs / GUEST_SITE.lstrip("/")
    stamp = env.root / ".site.done"
    signature = json.dumps([spec.pip_requirements, spec.pip_platforms, spec.pip_no_deps])
    if _stamp_ok(stamp, signature) and target.is_dir():
        return
    shutil.rmtree(target, ignore_errors=True)
    _say(spec, f"pip install --target {GUEST_SITE}: {' '.join(spec.pip_requirements)} …")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", GUEST_PYTHON_VERSION]
    for platform in spec.pip_platforms:
        cmd += ["--platform", platform]
    if spec.pip_no_deps:
        cmd.append("--no-deps")
    _run(cmd + list(spec.pip_requirements), f"fetching {spec.name} wheels",
         f"no cp311 {spec.name} wheels for {', '.join(spec.pip_requirements)} could be had from the package index")
    # Byte-compile with the guest interpreter once, so no run pays for compiling sources in emulation.
    _say(spec, "byte-compiling the guest's Python under emulation …")
    dirs = ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages", GUEST_SITE]
    dirs = [d for d in dirs if (env.rootfs / d.lstrip("/")).is_dir()]
    # Relative paths from cwd=rootfs: under `qemu -L` a guest path that does not exist in the rootfs
    # yet (a new __pycache__) resolves on the host, so absolute-path writes would miss the rootfs.
    code = ("import compileall, sys\n"
            "for d in sys.argv[2:]: compileall.compile_dir(d.lstrip('/'), ddir=sys.argv[1] + d, quiet=2)\n")
    with env_lock(env):
        install_fake_cpu(env.rootfs, spec.name, spec.default_cpu)
        cmd = guest_command(env, spec.default_cpu, ["/usr/bin/python3", "-c", code, env.guest_prefix, *dirs])
        proc = subprocess.run(cmd, cwd=env.rootfs, env=dict(guest_env(env), PYTHONDONTWRITEBYTECODE=""),
                              capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        raise DeviceError(f"the guest python3 could not run under {env.qemu.name} "
                          f"(exit {proc.returncode}: {proc.stderr.strip()[-200:]})",
                          f"delete {env.root} and rebuild")
    stamp.write_text(signature)


# --- instruction-counter plugin ---------------------------------------------------------------------

def _qemu_source_version(qemu: Path) -> tuple[str, str]:
    """(source package, source version) of the Debian package that installed `qemu`."""
    owner = _run(["dpkg", "-S", str(qemu.resolve())], "finding the package of qemu",
                 "install qemu-user from Debian (apt-get install qemu-user)").stdout.split(":")[0]
    out = _run(["dpkg-query", "-W", "-f", "${source:Package} ${source:Version}", owner],
               "reading the qemu package version", "apt-get install qemu-user").stdout.split()
    return out[0], out[1]


def _deb_src_lines() -> list[str]:
    """deb-src copies of the system's Debian/Ubuntu `deb` entries (one-line and deb822 formats)."""
    lines = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for f in files:
        for line in (f.read_text().splitlines() if f.is_file() else []):
            if line.strip().startswith("deb "):
                lines.append("deb-src " + line.strip()[4:])
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            opts = f"[signed-by={fields['signed-by']}] " if fields.get("signed-by", "").startswith("/") else ""
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    lines.append(f"deb-src {opts}{uri} {suite} {fields.get('components', 'main')}")
    lines = [ln for ln in lines if re.search(r"debian|ubuntu", ln.split("]")[-1])]
    return lines or [f"deb-src {DEFAULT_MIRROR} {DEBIAN_SUITE} main"]


def fetch_plugin_header(spec: ArchSpec, qemu: Path) -> Path:
    """qemu-plugin.h of the installed qemu, from its Debian source package (no binary package has it)."""
    package, version = _qemu_source_version(qemu)
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    header = cache_root() / "include" / f"{package}-{upstream}" / "qemu-plugin.h"
    if header.is_file():
        return header
    _require_tools({"apt-get": "apt"})
    src = cache_root() / "src"
    lists = src / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (src / "sources.list").write_text("\n".join(_deb_src_lines()) + "\n")
    apt = ["apt-get", "-q", "-o", f"Dir::Etc::SourceList={src / 'sources.list'}",
           "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={lists}",
           "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "-o", "APT::Sandbox::User=root"]
    _say(spec, f"fetching the {package} {version} source package for qemu-plugin.h …")
    _run(apt + ["update"], "apt-get update (deb-src)", "check network access to the Debian mirror")
    dl = src / "download"
    dl.mkdir(exist_ok=True)
    try:
        _run(apt + ["source", "--download-only", f"{package}={version}"], "apt-get source", "", cwd=dl)
    except DeviceError:  # that exact version left the mirror: any 7.x source of the suite has the same API
        _run(apt + ["source", "--download-only", package], "apt-get source qemu",
             "check network access to the Debian mirror", cwd=dl)
    tarballs = sorted(dl.glob(f"{package}_*.orig.tar.*"))
    if not tarballs:
        raise DeviceError(f"apt-get source {package} left no .orig tarball in {dl}", f"delete {src} and rebuild")
    with tarfile.open(tarballs[-1]) as tar:
        for member in tar:
            if member.name.endswith("include/qemu/qemu-plugin.h"):
                header.parent.mkdir(parents=True, exist_ok=True)
                header.write_bytes(tar.extractfile(member).read())
                break
    if not header.is_file():
        raise DeviceError(f"{tarballs[-1].name} has no include/qemu/qemu-plugin.h", "install qemu >= 4.2")
    shutil.rmtree(src, ignore_errors=True)  # ~45 MB of sources and indexes: only the header is kept
    return header


def build_plugin(spec: ArchSpec, qemu: Path) -> Path:
    header = fetch_plugin_header(spec, qemu)
    key = hashlib.sha256(f"{plugin_source_hash()} {header.parent.name}".encode()).hexdigest()[:12]
    plugin = cache_root() / "plugin" / f"insn_count-{key}.so"
    if plugin.is_file():
        return plugin
    _require_tools({"gcc": "gcc"})
    _say(spec, f"compiling {PLUGIN_SOURCE.name} against {header.parent.name}/qemu-plugin.h …")
    plugin.parent.mkdir(parents=True, exist_ok=True)
    tmp = plugin.with_suffix(".tmp")
    _run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{header.parent}", "-o", str(tmp),
          str(PLUGIN_SOURCE), "-lpthread"], "compiling the qemu plugin", "apt-get install gcc")
    tmp.rename(plugin)
    return plugin


# --- all of it --------------------------------------------------------------------------------------

def build_env(arch: str = "aarch64") -> QemuEnv:
    """Build (or finish building) the emulated board for `arch`; instant when already built."""
    spec = get_arch(arch)
    try:
        env = load_env(spec)
        _say(spec, f"already built: {env.root}")
        return env
    except DeviceError:
        pass

    t0 = time.monotonic()
    qemu = _require_qemu(spec)
    root = arch_dir(spec)
    # stages: rootfs (minutes: debootstrap), plugin, guest packages (byte-compiled under emulation), cpu files
    with progress.task(f"building the emulated {spec.name} board", total=4) as shown:
        rootfs = build_rootfs(spec, root)
        link_alternatives(rootfs)
        shown.report("rootfs ready", completed=1)
        plugin = build_plugin(spec, qemu)
        shown.report("instruction-counter plugin ready", completed=2)
        env = QemuEnv(arch=spec, root=root, rootfs=rootfs, qemu=qemu, plugin=plugin)
        install_guest_packages(spec, env)
        shown.report("guest Python packages ready", completed=3)
        install_fake_cpu(rootfs, spec.name, spec.default_cpu)
        shown.update(completed=4)
    (root / READY_STAMP).write_text(json.dumps({"signature": build_signature(spec), "plugin": str(plugin)}))
    _say(spec, f"ready in {time.monotonic() - t0:.0f} s: {root}")
    return load_env(spec)


def ensure_env(arch: str = "aarch64", *, build: bool = True) -> QemuEnv:
    """The emulated board for `arch`, building it first (needs root) when `build` is true."""
    spec = get_arch(arch)
    try:
        return load_env(spec)
    except DeviceError:
        if not build:
            raise
    return build_env(spec.name)
