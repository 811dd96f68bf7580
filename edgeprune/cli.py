"""The `edgeprune` command line.  Each area owns its command functions; this module wires them.

Every EdgepruneError becomes one line on stderr (``error: <problem> — <fix>``) and exit code 2.
Nothing heavy is imported at module level, so ``--help`` is instant.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgeprune import _env  # noqa: F401
from edgeprune.errors import EdgepruneError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Prune Keras models structurally, quantize, export TFLite/ONNX, and measure them on devices.")


@app.callback()
def global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table and errors (no progress, no step log).")] = False,
) -> None:
    """Progress of long work goes to stderr: live on a terminal, one line per epoch or trial otherwise."""
    from edgeprune import progress

    progress.set_quiet(quiet)


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see recipes/).")],
    model: Annotated[Optional[str], typer.Option(help="Model to use instead of the recipe's (zoo name or file).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>/).")] = None,
    device: Annotated[Optional[List[str]], typer.Option("--device", "-d", help="Benchmark on these devices instead of the recipe's.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory of another recipe.")] = False,
) -> None:
    """Run a recipe end to end into one run directory (re-running reuses cached steps)."""
    from edgeprune.progress import echo
    from edgeprune.recipe import run_recipe

    run_dir = run_recipe(recipe, out_dir=out, model=model, devices=device or None, overwrite=overwrite, log=echo)
    _print_summary(run_dir)


def _print_summary(run_dir: Path) -> None:
    from rich.console import Console

    from edgeprune.report import build_report, summary_table

    # the same rows as report.md's head; report.json when the run wrote one, else built from metrics
    report_json = run_dir / "report.json"
    report = json.loads(report_json.read_text()) if report_json.exists() else build_report(run_dir, weights=False)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(summary_table(report))


@app.command("inspect")
def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.keras, .h5 or SavedModel dir).")],
    groups: Annotated[bool, typer.Option("--groups", help="List the dependency groups and their members.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Parameters, MACs, a per-layer table, file size; with --groups, the channel dependency groups."""
    from edgeprune.inspect import inspect_model

    inspect_model(model, show_groups=groups, as_json=json_out)


@app.command("prune")
def prune_cmd(
    model: Annotated[Path, typer.Argument(help="Model file to prune.")],
    ratio: Annotated[float, typer.Option(help="Fraction of channels to remove per group (or globally).")] = 0.5,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the pruned .keras/.h5.")] = Path("pruned.keras"),
    criterion: Annotated[str, typer.Option(help="Importance criterion (l1, l2, bn_gamma, random, taylor, ...).")] = "l1",
    global_pruning: Annotated[bool, typer.Option("--global", help="Rank channels across all groups.")] = False,
    round_to: Annotated[int, typer.Option(help="Keep channel counts multiples of N (SIMD-friendly).")] = 1,
    min_channels: Annotated[int, typer.Option(help="Never keep fewer channels than this in a group.")] = 1,
    protect: Annotated[Optional[List[str]], typer.Option(help="Layer name/regex whose channels stay (repeatable).")] = None,
    no_protect_first: Annotated[bool, typer.Option("--no-protect-first", help="Allow pruning the first conv/dense.")] = False,
    data: Annotated[Optional[str], typer.Option(help="Dataset for data-driven criteria and --verify inputs.")] = None,
    plan: Annotated[Optional[Path], typer.Option(help="Replay a saved plan instead of scoring.")] = None,
    plan_out: Annotated[Optional[Path], typer.Option(help="Write the prune plan (JSON).")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check equivalence with the zeroed original (≤1e-4).")] = False,
    drop_features: Annotated[Optional[float], typer.Option(help="Dense-first models: drop this fraction of the input features instead of channels.")] = None,
    feature_method: Annotated[str, typer.Option(help="Input-feature ranking: weight_norm (first layer) or gradient (needs --data).")] = "weight_norm",
) -> None:
    """Remove whole channels (or, with --drop-features, input features) and write the smaller model."""
    from edgeprune.prune_cli import prune_features_file, prune_file

    if drop_features is not None:
        prune_features_file(model, output, ratio=drop_features, method=feature_method, data=data)
        return

    prune_file(model, output, ratio=ratio, criterion=criterion, global_pruning=global_pruning, round_to=round_to,
               min_channels=min_channels, protect=protect or [], protect_first=not no_protect_first, data=data,
               plan_path=plan, plan_out=plan_out, verify=verify)


def _register_optional():
    """Commands whose modules live in their own areas."""
    from edgeprune.harness.cli import bench_cmd, devices_cmd

    app.command("bench")(bench_cmd)
    app.command("devices")(devices_cmd)
    try:
        from edgeprune.export.cli import export_cmd

        app.command("export")(export_cmd)
    except ImportError:
        pass
    try:
        from edgeprune.report.cli import app as report_app

        app.add_typer(report_app, name="report")
    except ImportError:
        pass
    try:
        from edgeprune.strategies.cli import search_cmd

        app.command("search")(search_cmd)
    except ImportError:
        pass


_register_optional()


def main(argv=None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except EdgepruneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        sys.exit(code or 0)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # usage errors from typer's click layer carry show() and exit_code
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
