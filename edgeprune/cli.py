"""The `edgeprune` command line.  Each area owns its command functions; this module wires them.

The error contract lives in :func:`main`: an :class:`EdgepruneError` (or a usage error, or an OS error
such as a read-only folder) becomes one line on stderr, ``error: <problem> — <fix>``, optionally one
``hint:`` line, and a non-zero exit code; never a traceback (``--verbose`` shows one for unexpected
errors, and TensorFlow's own log lines).  Ctrl-C exits 130 and SIGTERM 143, each with one line.
Nothing heavy is imported at module level, so ``--help`` and refusals of bad paths are instant.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from edgeprune import _env, progress
from edgeprune.budget import Budget, budget_help
from edgeprune.criterion_names import criterion_help
from edgeprune.deploy_cli import deploy_cmd
from edgeprune.devicecost import ALLOCATION_KEYS
from edgeprune.devicecost.cli import search_cmd
from edgeprune.errors import EdgepruneError, Interrupted
from edgeprune.export.cli import export_cmd
from edgeprune.harness.cli import bench_cmd, devices_cmd
from edgeprune.profiling.cli import profile_cmd
from edgeprune.progress import echo
from edgeprune.prune_options import PruneOptions
from edgeprune.recipe import run_recipe
from edgeprune.recipe.schema import check_model_file, load_recipe
from edgeprune.report import build_report, summary_table
from edgeprune.report.cli import app as report_app
from edgeprune.report.sections import answer_lines


class _PlainHelp(TyperGroup):
    """The root group; it writes --help as click does: ``MODEL`` on usage lines and nothing after a
    flag, where typer (0.2x) writes ``{model}`` and ``<bool>`` (which reads as if a flag took a value)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _plain_help(self)


def _plain_help(command) -> None:
    for param in command.params:
        _plain_param(param)
    help_option = command.get_help_option

    def plain_help_option(ctx):
        option = help_option(ctx)
        if option is not None:
            _plain_param(option)
        return option

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _plain_param(param) -> None:
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""  # typer shows the metavar, when set, instead of <bool>
    elif param.param_type_name == "argument":
        name = (param.metavar or param.name).upper() + ("..." if param.nargs != 1 else "")
        piece = name if param.required else f"[{name}]"
        param.get_usage_pieces = lambda ctx, piece=piece: [piece]


app = typer.Typer(cls=_PlainHelp, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Prune Keras models structurally, quantize, export TFLite/ONNX, and measure them on devices.")


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show TensorFlow's own log lines and full tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table and errors (no progress, no step log).")] = False,
) -> None:
    """Prune Keras models structurally, quantize, export TFLite/ONNX, and measure them on devices."""
    progress.set_quiet(quiet)  # progress otherwise goes to stderr: live on a terminal, one line per epoch/trial in a pipe


def _require_file(path: Path, what: str) -> None:
    """Refuse a missing input before anything heavy (TensorFlow) is imported."""
    if not Path(path).exists():
        raise EdgepruneError(f"{what} {path} does not exist", "check the path")


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (see recipes/).")],
    model: Annotated[Optional[str], typer.Option(help="Model to use instead of the recipe's (zoo name or file).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<recipe name>/).")] = None,
    device: Annotated[Optional[List[str]], typer.Option("--device", "-d", help="Benchmark on these devices instead of the recipe's.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory of another recipe.")] = False,
) -> None:
    """Run a recipe end to end into one run directory (re-running reuses cached steps)."""
    _require_file(recipe, "recipe")
    check_model_file(model or load_recipe(recipe).model)  # a bad recipe is refused before TensorFlow loads

    run_dir = run_recipe(recipe, out_dir=out, model=model, devices=device or None, overwrite=overwrite, log=echo)
    _print_summary(run_dir)


def _print_summary(run_dir: Path) -> None:
    # the same rows as report.md's head; report.json when the run wrote one, else built from metrics
    report_json = run_dir / "report.json"
    report = json.loads(report_json.read_text()) if report_json.exists() else build_report(run_dir, weights=False)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(summary_table(report))
    report_md = run_dir / "report.md"
    for line in answer_lines(report, str(report_md) if report_md.exists() else None):
        print(line)  # plain lines: the answer stays readable (and greppable) at any width


@app.command("inspect")
def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="Model file (.keras, .h5 or SavedModel dir).")],
    groups: Annotated[bool, typer.Option("--groups", help="List the dependency groups and their members.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Parameters, MACs, a per-layer table, file size; with --groups, the channel dependency groups."""
    _require_file(model, "model file")
    # inspect loads TensorFlow: only once the model file is checked
    from edgeprune.inspect import inspect_model

    inspect_model(model, show_groups=groups, as_json=json_out)


@app.command("prune")
def prune_cmd(
    model: Annotated[Path, typer.Argument(help="Model file to prune.")],
    ratio: Annotated[float, typer.Option(help="Fraction of channels to remove per group (or globally).")] = 0.5,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the pruned .keras/.h5.")] = Path("pruned.keras"),
    criterion: Annotated[str, typer.Option(help=criterion_help("--data"))] = "l1",
    global_pruning: Annotated[bool, typer.Option("--global", help="Rank channels across all groups.")] = False,
    round_to: Annotated[int, typer.Option(help="Keep channel counts multiples of N (SIMD-friendly).")] = 1,
    min_channels: Annotated[int, typer.Option(help="Never keep fewer channels than this in a group.")] = 1,
    protect: Annotated[Optional[List[str]], typer.Option(help="Layer name/regex whose channels stay (repeatable).")] = None,
    protect_first: Annotated[bool, typer.Option("--protect-first", help="Keep the first conv/dense whole even where that pins a group shared with other layers (by default it is kept only where it pins none; with --budget it is pruned).")] = False,
    no_protect_first: Annotated[bool, typer.Option("--no-protect-first", help="Prune the first conv/dense like any other layer.")] = False,
    data: Annotated[Optional[str], typer.Option(help="Dataset for data-driven criteria and --verify inputs. A :raw or :symmetric suffix (e.g. my.npz:raw) changes how uint8 pixels are scaled (default :unit, pixel/255 in [0, 1]); float data are used as stored.")] = None,
    plan: Annotated[Optional[Path], typer.Option(help="Replay a saved plan instead of scoring.")] = None,
    plan_out: Annotated[Optional[Path], typer.Option(help="Write the prune plan (JSON).")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the pruned model against the zeroed original (logits, ≤1e-4 of their scale; on --data when given).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at a layer the engine cannot follow instead of keeping its channels.")] = False,
    drop_features: Annotated[Optional[float], typer.Option(help="Dense-first models: drop this fraction of the input features instead of channels.")] = None,
    feature_method: Annotated[str, typer.Option(help="Input-feature ranking: weight_norm (first layer) or gradient (needs --data).")] = "weight_norm",
    budget: Annotated[Optional[List[str]], typer.Option(help="Device-cost allocation: a limit KEY=VALUE on --device, all to be met (repeatable). " + budget_help(ALLOCATION_KEYS) + ".")] = None,
    device: Annotated[Optional[str], typer.Option(help="With --budget: the device whose measured per-op cost decides the channels (the first layer too: protect it with --protect NAME).")] = None,
    precision: Annotated[str, typer.Option(help="With --budget: the precision to cost (float32, float16, int8, mixed), or auto: chosen per layer with the channels.")] = "int8",
    keep_float: Annotated[Optional[List[str]], typer.Option(help="With --precision mixed: a layer kept float (repeatable).")] = None,
    compare_device: Annotated[Optional[List[str]], typer.Option(help="With --budget: also allocate for this device and take its channels when they meet the budget on --device losing less (repeatable).")] = None,
    weigh: Annotated[str, typer.Option(help="With --budget: what a step loses, 'score' (the group's channel-score share) or 'accuracy' (validation accuracy with that group alone cut; needs --data).")] = "score",
    best_effort: Annotated[bool, typer.Option("--best-effort", help="With --budget: when no channel counts meet it, write the cheapest found instead of stopping.")] = False,
    recalibrate_bn: Annotated[bool, typer.Option("--recalibrate-bn/--no-recalibrate-bn", help="With --data: re-estimate BatchNorm statistics on its training split after surgery (as a recipe's prune step does).")] = True,
) -> None:
    """Remove whole channels (or, with --drop-features, input features) and write the smaller model."""
    _require_file(model, "model file")
    if plan is not None:
        _require_file(plan, "plan file")
    if not 0.0 <= ratio < 1.0:
        raise EdgepruneError(f"--ratio {ratio:g} is not a fraction in [0, 1)", "e.g. --ratio 0.5")
    if drop_features is not None and not 0.0 < drop_features < 1.0:
        raise EdgepruneError(f"--drop-features {drop_features:g} is not a fraction in (0, 1)", "e.g. --drop-features 0.2")
    if output.suffix not in (".keras", ".h5"):
        raise EdgepruneError(f"output {output} must end in .keras or .h5", "e.g. -o pruned.keras")
    if weigh not in ("score", "accuracy") or (weigh == "accuracy" and not data):
        raise EdgepruneError(f"--weigh {weigh} needs to be 'score', or 'accuracy' with --data",
                             "e.g. --weigh accuracy --data mnist")
    if protect_first and no_protect_first:
        raise EdgepruneError("--protect-first and --no-protect-first contradict each other", "pass one of them")
    if (budget or device) and not (budget and device):
        raise EdgepruneError("device-cost pruning needs both --device and --budget",
                             "e.g. --device qemu-aarch64 --budget reduction=6 (or latency_ms=0.3)")
    first_layer = True if protect_first else False if no_protect_first else None  # None: prune decides (pruning.api)
    device_cost = bool(budget or device)
    limits = Budget.parse(budget).require(ALLOCATION_KEYS, "prune --budget") if device_cost else None
    options = PruneOptions.checked(
        PRUNE_FLAGS, ratio=ratio, criterion=criterion, global_pruning=global_pruning, round_to=round_to,
        min_channels=min_channels, protect=protect or [], protect_first=first_layer, strict=strict,
        recalibrate_bn=recalibrate_bn, **({"allocation": "device_cost", "device": device, "budget": limits,
                                          "precision": precision, "keep_float": keep_float or [], "weigh": weigh,
                                          "best_effort": best_effort, "compare_devices": compare_device or []}
                                         if device_cost else {}))
    # deferred: prune_cli loads TensorFlow, after every option is checked
    from edgeprune.prune_cli import prune_features_file, prune_file

    if drop_features is not None:
        prune_features_file(model, output, ratio=drop_features, method=feature_method, data=data)
        return
    prune_file(model, output, options=options, data=data, plan_path=plan, plan_out=plan_out, verify=verify)


# the CLI spelling of each prune option, for PruneOptions' error lines
PRUNE_FLAGS = {"ratio": "--ratio", "global": "--global", "round_to": "--round-to", "min_channels": "--min-channels",
               "precision": "--precision", "keep_float": "--keep-float", "weigh": "--weigh", "budget": "--budget",
               "device": "--device", "compare_devices": "--compare-device", "": ""}


# commands whose functions live in their own areas
app.command("export")(export_cmd)
app.command("bench")(bench_cmd)
app.command("deploy")(deploy_cmd)
app.command("devices")(devices_cmd)
app.command("search")(search_cmd)
app.command("profile")(profile_cmd)
app.add_typer(report_app, name="report")


def main(argv=None) -> None:
    """The console entry point: runs one command and exits with its code (see the module docstring)."""
    args = sys.argv[1:] if argv is None else list(argv)
    verbose = _wants_verbose(args)
    _env.own_process()
    if argv is None and not verbose:  # a real process: nothing else owns file descriptor 2
        _env.quiet_native_logs()
    with _signals_raise_interrupted():
        code = run_command(args, verbose=verbose)
    sys.exit(code)


def _wants_verbose(args: list[str]) -> bool:
    before_command = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    return bool({"--verbose", "-v"} & set(args[:before_command])) or os.environ.get("EDGEPRUNE_VERBOSE") == "1"


def run_command(args: list[str], *, verbose: bool = False) -> int:
    """Run the CLI on `args` in this process; returns the exit code after printing any error line."""
    if not verbose:
        _env.quiet_python_logs()
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
        try:
            rv = app(args=args, standalone_mode=False, prog_name="edgeprune")
            return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except EdgepruneError as e:
            return _refuse(str(e), hint=e.hint, code=e.exit_code)
        except Interrupted as e:
            return _interrupted(e)
        except typer.Exit as e:
            return e.exit_code
        except (typer.Abort, KeyboardInterrupt):
            return _interrupted(Interrupted(signal.SIGINT))
        except typer.TyperException as e:  # usage errors: typer's click layer
            if type(e).__name__ == "NoArgsIsHelpError":
                e.show()
                return e.exit_code
            where = e.ctx.command_path if getattr(e, "ctx", None) else "edgeprune"
            return _refuse(e.format_message(), f"see '{where} --help'", code=e.exit_code)
        except OSError as e:
            if (lost := Interrupted.lost_in(e)) is not None:
                return _interrupted(lost)
            if verbose:
                raise
            return _refuse(*_os_error(e), code=1)
        except Exception as e:  # a bug, not bad input: still one line unless --verbose
            if (lost := Interrupted.lost_in(e)) is not None:  # the signal's exception came out of C code as another error
                return _interrupted(lost)
            if verbose:
                raise
            first = (str(e).strip().splitlines() or [""])[0][:200]
            return _refuse(f"unexpected {type(e).__name__}: {first}",
                           "re-run with --verbose for the traceback and please report it", code=1)


def _refuse(problem: str, fix: str | None = None, *, hint: str | None = None, code: int = 2) -> int:
    """Print the error line (and hint line); always exactly one or two lines."""
    line = problem if fix is None else f"{problem} — {fix}"
    print("error: " + " ".join(line.split()), file=sys.stderr)
    if hint:
        print("hint: " + " ".join(hint.split()), file=sys.stderr)
    return code


def _interrupted(e: Interrupted) -> int:
    name = signal.Signals(e.signum).name
    if e.step:
        return _refuse(f"interrupted ({name}) during step {e.step}",
                       "re-run the same command to resume from that step (finished steps are cached)", code=e.exit_code)
    return _refuse(f"interrupted ({name})", "nothing was left half-written; re-run the command", code=e.exit_code)


def _os_error(e: OSError) -> tuple[str, str]:
    where = f" {e.filename}" if e.filename else ""
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write or read{where}: {e.strerror}", "choose a folder you can write to (or fix its permissions)"
    if e.errno == errno.ENOSPC:
        return f"no space left on the device writing{where}", "free some disk space, or pass --out on another disk"
    if e.errno == errno.ENOENT:
        return f"no such file or folder:{where}", "check the path"
    return f"{e.strerror or type(e).__name__}:{where}", "check the path and its permissions"


@contextlib.contextmanager
def _signals_raise_interrupted():
    """SIGINT and SIGTERM raise :class:`Interrupted` (which typer does not swallow as it does Ctrl-C)."""
    def handler(signum, frame):
        Interrupted.received = signum
        raise Interrupted(signum)

    if sys.platform == "win32" or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    Interrupted.received = None
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        Interrupted.received = None


if __name__ == "__main__":
    main()
