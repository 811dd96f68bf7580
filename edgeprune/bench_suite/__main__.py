"""python -m edgeprune.bench_suite [--suite FILE] [--quick] [--out DIR] [--work DIR] [--markdown FILE] [--executor ray]"""
from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path

from edgeprune.bench_suite import report
from edgeprune.bench_suite.suite import DEFAULT_SUITE, load_suite
from edgeprune.errors import EdgepruneError
from edgeprune.executor import get_executor


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m edgeprune.bench_suite", description=__doc__.split("\n")[0])
    p.add_argument("--suite", default=str(DEFAULT_SUITE), help="the bench manifest (default recipes/bench/suite.yaml)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: every recipe on 2,000 training and 500 test images, few timed runs")
    p.add_argument("--groups", help="comma-separated group names to run (default: all)")
    p.add_argument("--devices", help="comma-separated devices (default: the suite's)")
    p.add_argument("--out", default="bench/results", help="folder for <date>.json")
    p.add_argument("--work", help="folder for the run directories (default bench/work/<date>[-quick]); "
                                  "an interrupted bench resumes there")
    p.add_argument("--markdown", help="report path (default BENCHMARKS.md; with --quick, <out>/BENCHMARKS-quick.md)")
    p.add_argument("--executor", default="inprocess", choices=["inprocess", "ray"])
    p.add_argument("--ray-address", help="join a running Ray cluster (default: a local instance)")
    p.add_argument("--report-only", metavar="JSON", help="regenerate the report from an existing summary JSON")
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    markdown = Path(args.markdown) if args.markdown else (
        Path(args.out) / "BENCHMARKS-quick.md" if args.quick else Path("BENCHMARKS.md"))
    try:
        if args.report_only:
            print(f"wrote {report.write_report(Path(args.report_only), markdown)}")
            return 0
        suite = load_suite(args.suite)
        if args.groups:
            names = [n.strip() for n in args.groups.split(",") if n.strip()]
            unknown = sorted(set(names) - {g.name for g in suite.groups})
            if unknown:
                raise EdgepruneError(f"unknown bench group(s) {', '.join(unknown)}",
                                     f"use some of {', '.join(g.name for g in suite.groups)}")
            suite = suite.model_copy(update={"groups": [g for g in suite.groups if g.name in names]})
        if args.devices:
            suite = suite.model_copy(update={"devices": [d.strip() for d in args.devices.split(",") if d.strip()]})
        # the bench loads TensorFlow: only after the arguments and the suite are checked
        from edgeprune.bench_suite.run import run_bench

        work = Path(args.work) if args.work else Path("bench/work") / (_dt.date.today().isoformat()
                                                                        + ("-quick" if args.quick else ""))
        given = sys.argv[1:] if argv is None else list(argv)
        command = shlex.join(["python", "-m", "edgeprune.bench_suite", *given])
        json_path, md = run_bench(suite, work_dir=work, out_dir=Path(args.out), markdown=markdown, command=command,
                                  executor=get_executor(args.executor, address=args.ray_address), quick=args.quick,
                                  quiet=args.quiet, log=(lambda m: None) if args.quiet else print)
    except EdgepruneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {json_path} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
