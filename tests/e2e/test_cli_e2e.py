"""The command line: --help everywhere, one-line errors with a non-zero exit code on bad input."""
import re
import subprocess
import sys

import pytest

COMMANDS = ["run", "inspect", "prune", "export", "bench", "report", "devices", "search"]


def edgeprune(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgeprune", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def listed_commands(help_text: str) -> list[str]:
    """The names in the help's command list (rich panel rows or plain click rows), not words in prose."""
    commands = help_text.split("Commands", 1)[1]
    return re.findall(r"^[│|]?\s{1,3}([a-z][\w-]*)\s{2,}\S", commands, flags=re.M)


def test_help_lists_commands():
    out = edgeprune("--help")
    assert out.returncode == 0
    listed = listed_commands(out.stdout)
    assert set(COMMANDS) <= set(listed), out.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help(cmd):
    out = edgeprune(cmd, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def _one_line_error(out):
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_run_refuses_bad_recipe_naming_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: lenet5\nsteps:\n  - prune: {ratoi: 0.5}\n")
    line = _one_line_error(edgeprune("run", str(bad), "--out", str(tmp_path / "run")))
    assert "'steps[0].prune.ratoi': unknown key" in line and "bad.yaml:4" in line
    assert not (tmp_path / "run").exists()


def test_run_refuses_unknown_model(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nmodel: nosuchnet\nsteps:\n  - train: {epochs: 1}\n")
    line = _one_line_error(edgeprune("run", str(recipe), "--out", str(tmp_path / "run")))
    assert "nosuchnet" in line


def test_inspect_refuses_corrupt_model(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    line = _one_line_error(edgeprune("inspect", str(bad)))
    assert "broken.keras" in line


@pytest.mark.slow  # resnet8 pruned and verified in a subprocess
def test_prune_and_inspect_roundtrip(tmp_path):
    from edgeprune import zoo
    from edgeprune.modelio import save_model

    src = tmp_path / "resnet8.keras"
    save_model(zoo.build("resnet8"), src, flavor="keras3")
    out = edgeprune("prune", str(src), "--ratio", "0.5", "--round-to", "4", "--verify", "-o", str(tmp_path / "p.keras"),
                    "--plan-out", str(tmp_path / "plan.json"))
    assert out.returncode == 0, out.stderr
    assert "equivalence" in out.stdout and (tmp_path / "plan.json").exists()
    info = edgeprune("inspect", str(tmp_path / "p.keras"), "--groups", "--json")
    assert info.returncode == 0, info.stderr
    import json

    data = json.loads(info.stdout)
    assert data["keras"] == "keras3" and data["groups"]
    before = json.loads(edgeprune("inspect", str(src), "--json").stdout)
    assert data["macs"] < before["macs"] and data["file_bytes"] < before["file_bytes"]


def test_prune_drop_features_on_an_mlp(tmp_path):
    import json

    from edgeprune.keras import keras, layers

    inp = keras.Input((20,), name="x")
    h = layers.Dense(16, activation="relu", name="fc1")(inp)
    model = keras.Model(inp, layers.Dense(3, activation="softmax", name="out")(h))
    w = model.get_layer("fc1").get_weights()
    w[0][[2, 5, 7], :] = 0.0  # three features the model ignores
    model.get_layer("fc1").set_weights(w)
    src, dst = tmp_path / "mlp.keras", tmp_path / "mlp-small.keras"
    model.save(src)
    out = edgeprune("prune", str(src), "--drop-features", "0.15", "-o", str(dst))
    assert out.returncode == 0, out.stderr
    kept = json.loads(dst.with_suffix(".features.json").read_text())["kept"]
    assert len(kept) == 17 and not {2, 5, 7} & set(kept)
    small = keras.models.load_model(dst, compile=False)
    assert small.input_shape == (None, 17)


def _help_words(*args) -> str:
    """A command's --help as one line of words (rich's boxes and wrapping removed)."""
    out = edgeprune(*args, "--help")
    assert out.returncode == 0, out.stderr
    return " ".join(out.stdout.replace("│", " ").split())


def test_help_names_every_export_target_and_criterion():
    """Issue 23: export/bench help forgot ORT, prune/search help listed some criteria and '...'."""
    from edgeprune.export.targets import suffixes, target_names
    from edgeprune.prune_cli import CRITERIA, DATA_CRITERIA
    from edgeprune.pruning.importance import CRITERIA as REGISTRY
    from edgeprune.pruning.importance import DATA_CRITERIA as DATA_REGISTRY

    assert set(CRITERIA) == set(REGISTRY) and set(DATA_CRITERIA) == DATA_REGISTRY  # the help's list is the registry's
    export, bench = _help_words("export").lower(), _help_words("bench")
    assert all(name in export.split("--format")[0] for name in target_names()), export
    assert all(suffix in bench for suffix in suffixes()), bench
    for cmd in ("prune", "search"):
        text = _help_words(cmd)
        assert "..." not in text and all(re.search(rf"\b{name}\b", text) for name in REGISTRY), text
        assert "threshold_<base>" in text


def test_search_needs_data_named_before_tensorflow(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not read: --data is checked first")
    out = edgeprune("search", str(model), "--budget", "macs=1000", "--out", str(tmp_path / "run"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: search needs --data: the dataset the model was trained on (candidates are fine-tuned and scored on "
        "its validation split) — e.g. --data fashion_mnist, or --data my.npz"], out.stderr
    assert "[default: fashion_mnist]" not in _help_words("search")


# --------------------------------------------------------------------------------------------
# help texts (in process: typer's CliRunner)
