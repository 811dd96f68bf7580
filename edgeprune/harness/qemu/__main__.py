"""`python -m edgeprune.harness.qemu build [--arch aarch64|armv7|all]`; `run SCRIPT [ARGS…]` for poking."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.harness.qemu import ensure_env, run_python
from edgeprune.harness.qemu.arches import ARCHES
from edgeprune.harness.qemu.build import build_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeprune.harness.qemu")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and cache the emulated board (needs root)")
    build.add_argument("--arch", default="aarch64", choices=[*ARCHES, "all"])
    run = sub.add_parser("run", help="run a Python script in the emulated board, print region counts")
    run.add_argument("--arch", default="aarch64", choices=list(ARCHES))
    run.add_argument("--cpu", default=None)
    run.add_argument("--file", action="append", default=[], type=Path, help="extra file to copy in")
    run.add_argument("script", type=Path)
    run.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    try:
        if ns.command == "build":
            for arch in (list(ARCHES) if ns.arch == "all" else [ns.arch]):
                build_env(arch)
            return 0
        res = run_python(ensure_env(ns.arch, build=False), ns.script, ns.args, cpu=ns.cpu, files=ns.file)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        print(f"cpu={res.cpu} region_instructions={res.region_instructions}", file=sys.stderr)
        return res.returncode
    except EdgepruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
