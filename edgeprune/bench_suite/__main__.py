"""python -m edgeprune.bench_suite [--quick] [--models ...] [--datasets ...] [--epochs N] [--devices ...] [--out DIR]"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgeprune.errors import EdgepruneError


def _names(text: str | None):
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m edgeprune.bench_suite", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: lenet5, fashion_mnist, small slices, host only")
    p.add_argument("--models", help="comma-separated zoo models (default lenet5,resnet8)")
    p.add_argument("--datasets", help="comma-separated datasets (default fashion_mnist,mnist)")
    p.add_argument("--epochs", type=int, help="epochs of the shared dense pre-training")
    p.add_argument("--finetune-epochs", type=int, help="epochs each variant spends on its own recipe")
    p.add_argument("--devices", help="comma-separated device profiles (default host,qemu-aarch64)")
    p.add_argument("--runs", type=int, help="timed inferences per variant and repetition on the host")
    p.add_argument("--reps", type=int, help="repetitions (variants alternate within each)")
    p.add_argument("--max-train", type=int, help="use only the first N training images")
    p.add_argument("--max-test", type=int, help="use only the first N test images (default: full split)")
    p.add_argument("--out", default="bench/results", help="folder for <date>.json and the plot")
    p.add_argument("--work", default="bench/work", help="folder for trained models and per-trial JSON")
    p.add_argument("--markdown", help="report path (default BENCHMARKS.md; with --quick, <out>/BENCHMARKS-quick.md)")
    p.add_argument("--report-only", metavar="JSON", help="regenerate the report from an existing summary JSON")
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from edgeprune.bench_suite import report, settings

    markdown = Path(args.markdown) if args.markdown else (
        Path(args.out) / "BENCHMARKS-quick.md" if args.quick else Path("BENCHMARKS.md"))
    try:
        if args.report_only:
            md, plot = report.write_report(Path(args.report_only), markdown)
            print(f"wrote {md}" + (f" and {plot}" if plot else ""))
            return 0
        make = settings.quick_settings if args.quick else settings.full_settings
        s = make(models=_names(args.models), datasets=_names(args.datasets), devices=_names(args.devices),
                 epochs=args.epochs, finetune_epochs=args.finetune_epochs, runs=args.runs, reps=args.reps,
                 max_train=args.max_train, max_test=args.max_test)
        from edgeprune.bench_suite.run import run_bench

        given = sys.argv[1:] if argv is None else list(argv)
        command = shlex.join(["python", "-m", "edgeprune.bench_suite", *given])
        json_path, md = run_bench(s, out_dir=Path(args.out), work_dir=Path(args.work), markdown=markdown,
                                  command=command, verbose=not args.quiet)
    except EdgepruneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {json_path} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
