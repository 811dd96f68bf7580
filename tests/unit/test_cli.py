"""The command line: --help everywhere, one-line errors with a non-zero exit code on bad input."""
import re
import subprocess
import sys


def edgeprune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def listed_commands(help_text: str) -> list[str]:
    """The names in the help's command list (rich panel rows or plain click rows), not words in prose."""
    commands = help_text.split("Commands", 1)[1]
    return re.findall(r"^[│|]?\s{1,3}([a-z][\w-]*)\s{2,}\S", commands, flags=re.M)


def test_search_prints_an_accuracy_change_with_one_sign():
    from edgeprune.tables import fmt_points

    assert fmt_points(0.35) == "+0.35 pt" and fmt_points(73.25) == "+73.25 pt"  # better than the baseline
    assert fmt_points(-1.2) == "−1.20 pt" and fmt_points(0.0001) == "±0.00 pt"


# --------------------------------------------------------------------------------------------
# help texts (in process: typer's CliRunner)


def _help(*args) -> str:
    from typer.testing import CliRunner

    from edgeprune.cli import app

    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"}, prog_name="edgeprune")
    assert res.exit_code == 0, res.output
    return res.output


def test_help_shows_flags_without_a_value_and_arguments_in_capitals():
    text = _help("prune")
    assert "Usage: edgeprune prune [OPTIONS] MODEL" in text and "{model}" not in text
    assert "<bool>" not in text  # a flag takes no value
    assert re.search(r"--global\s+Rank channels", text) and re.search(r"--protect-first\s+Keep the first", text)
    assert "<float>" in text  # options with a value keep their type
    assert "RUN_DIRS..." in _help("report", "compare") and "<bool>" not in _help("run")


def test_report_help_names_the_run_dir_form():
    text = _help("report")
    assert "Usage: edgeprune report [OPTIONS] RUN_DIR | COMMAND [ARGS]..." in text
    assert set(listed_commands(text)) == {"build", "compare"}


def test_protect_first_and_no_protect_first_together_are_refused(tmp_path, capsys):
    from edgeprune.cli import run_command

    model = tmp_path / "m.keras"
    model.write_bytes(b"not read: refused first")
    assert run_command(["prune", str(model), "--protect-first", "--no-protect-first"]) == 2
    assert capsys.readouterr().err.startswith("error: --protect-first and --no-protect-first contradict")


def test_the_digits_dataset_is_built_in():
    from edgeprune.data import load_dataset

    ds = load_dataset("digits")  # scikit-learn is a dependency (pyproject.toml), not an extra to find out about
    assert ds.x_train.shape[1:3] == (8, 8) and len(ds.x_test) == 1797 // 5
