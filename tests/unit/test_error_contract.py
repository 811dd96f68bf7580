"""The error contract of issue 16, case by case: one line (two with a hint), non-zero exit, nothing lost."""
import os
import stat

import numpy as np
import pytest
from helpers.robustness import CLASSES, assert_refused, cli, snapshot, tiny_model, write_dataset, write_onnx


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from edgeprune.modelio import save_model

    d = tmp_path_factory.mktemp("contract")
    save_model(tiny_model(), d / "tiny.keras", flavor="keras3")
    save_model(tiny_model(two_inputs=True), d / "two.keras", flavor="keras3")
    return d


# ---- arguments and paths: refused before TensorFlow loads -----------------------------------------


def test_usage_errors_are_one_line():
    line = assert_refused(cli("prune", "--no-such-option"))
    assert "--no-such-option" in line and "edgeprune prune --help" in line
    assert_refused(cli("inspect"), "Missing argument")


# ---- run directories: nothing a user owns is lost ---------------------------------------------------

RECIPE = "model: {model}\ndataset: {data}\nsteps:\n  - prune: {{ratio: 0.5, verify: false, recalibrate_bn: false}}\n"


@pytest.fixture()
def recipe(files, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(RECIPE.format(model=files / "tiny.keras", data=write_dataset(tmp_path / "d.npz")))
    return path


def test_overwrite_refuses_a_folder_edgeprune_did_not_create(recipe, tmp_path):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "cat.jpg").write_bytes(b"precious")
    before = snapshot(user)
    line = assert_refused(cli("run", recipe, "--out", user, "--overwrite"))
    assert str(user) in line and "holds no edgeprune run" in line
    assert snapshot(user) == before


def test_overwrite_removes_only_what_a_run_wrote(recipe, tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert cli("run", recipe, "--out", out).code == 0
    finally:
        os.umask(old)
    assert (out / ".edgeprune-run").is_file() and (out / "models" / "pruned.keras").is_file()
    for written in ("metrics.json", "models/pruned.keras", "plan.json"):  # the umask's permissions, not 0600
        assert stat.S_IMODE((out / written).stat().st_mode) == 0o644, written
    (out / "notes.txt").write_text("mine")
    r = cli("run", recipe, "--out", out, "--overwrite")
    assert r.code == 0, r.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "models" / "pruned.keras").is_file()
    import json

    assert json.loads((out / "metrics.json").read_text())["run"]["name"] == "mine"  # the recipe file's stem


def test_run_into_an_unwritable_place_is_one_line(recipe, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_refused(cli("run", recipe, "--out", blocker / "run"), "cannot create run directory")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert_refused(cli("run", recipe, "--out", ro / "run"), "cannot create run directory")


def test_exported_files_have_the_umask_permissions(files, tmp_path):
    old = os.umask(0o022)
    try:
        r = cli("export", files / "tiny.keras", "-o", tmp_path / "t.tflite")
    finally:
        os.umask(old)
    assert r.code == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "t.tflite").stat().st_mode) == 0o644


# ---- data against the model ---------------------------------------------------------------------------

def test_labels_outside_the_models_classes(files, tmp_path):
    data = write_dataset(tmp_path / "ten.npz", classes=10, y_train=np.arange(24) % 10)
    assert_refused(cli("prune", files / "tiny.keras", "--data", data, "-o", tmp_path / "p.keras"),
                   "labels 0..9", f"{CLASSES} classes")
    assert not (tmp_path / "p.keras").exists()


def test_recipe_run_checks_data_before_training(files, tmp_path):
    data = write_dataset(tmp_path / "d.npz", shape=(8, 8, 3))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {files / 'tiny.keras'}\ndataset: {data}\nsteps:\n  - train: {{epochs: 1}}\n")
    assert_refused(cli("run", recipe, "--out", tmp_path / "run"), "(8, 8, 3)", "(8, 8, 1)")


def test_zoo_model_too_big_for_the_images(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: lenet5\ndataset: {write_dataset(tmp_path / 'd.npz')}\nsteps:\n  - train: {{epochs: 1}}\n")
    assert_refused(cli("run", recipe, "--out", tmp_path / "run"), "zoo model lenet5", "(8, 8, 1)")


def test_nan_weights_are_refused_naming_the_layer(tmp_path):
    from edgeprune.modelio import save_model

    model = tiny_model()
    w = model.get_layer("conv").get_weights()
    w[0][0, 0, 0, 0] = np.nan
    model.get_layer("conv").set_weights(w)
    save_model(model, tmp_path / "nan.keras", flavor="keras3")
    assert_refused(cli("prune", tmp_path / "nan.keras", "-o", tmp_path / "p.keras"), "NaN", "'conv'")


def test_lambda_layer_is_named_not_dtype_policy(tmp_path):
    import keras

    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(tmp_path / "lam.keras")
    line = assert_refused(cli("inspect", tmp_path / "lam.keras"), "Lambda")
    assert "DTypePolicy" not in line


# ---- models with two inputs ------------------------------------------------------------------------

def test_two_input_model_verify_and_export_name_the_limit(files, tmp_path):
    assert_refused(cli("prune", files / "two.keras", "--verify", "-o", tmp_path / "p.keras"),
                   "prune --verify", "2 input(s)")
    line = assert_refused(cli("export", files / "two.keras", "-o", tmp_path / "two.tflite"), "2 input(s)")
    assert ".tmp" not in line and not list(tmp_path.glob(".two*"))


# ---- exported files ------------------------------------------------------------------------------------

def test_zero_byte_tflite_and_dynamic_onnx(tmp_path):
    (tmp_path / "z.tflite").write_bytes(b"")
    assert_refused(cli("bench", tmp_path / "z.tflite"), "empty (0 bytes)")
    write_onnx(tmp_path / "dyn.onnx", dynamic_hw=True)
    assert_refused(cli("bench", tmp_path / "dyn.onnx"), "dynamic size 'height' on axis 1")


# ---- recipes ---------------------------------------------------------------------------------------------

def test_recipe_shorthand_name_default_and_all_errors_at_once(tmp_path):
    from edgeprune.recipe import load_recipe

    ok = tmp_path / "my-run.yaml"
    ok.write_text("model: lenet5\ndataset: fashion_mnist\nsteps:\n  - train: {}\n")
    r = load_recipe(ok)
    assert r.name == "my-run" and r.dataset.name == "fashion_mnist"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: lenet5\nseed: x\nsteps:\n  - prune: {ratoi: 0.5}\n  - train: {epochs: 0}\n  - nope: {}\n")
    line = assert_refused(cli("run", bad))
    assert line.count("bad.yaml:") == 4 and "4 problems" in line
    for where in ("bad.yaml:2: 'seed'", "bad.yaml:4: 'steps[0].prune.ratoi'", "bad.yaml:5: 'steps[1].train.epochs'",
                  "bad.yaml:6: 'steps[2].nope'"):
        assert where in line, line


def test_a_signal_whose_exception_comes_out_of_c_code_as_another_error_is_still_the_interrupt(recipe, tmp_path,
                                                                                               monkeypatch):
    """SIGTERM's exception, raised by the CLI's handler while C code runs, can surface as a SystemError ("bad
    argument to internal function", seen under load while training): reported as the interrupt, with its step."""
    import signal

    from edgeprune.errors import Interrupted
    from edgeprune.recipe import runner

    def step_hit_by_sigterm(*args, **kwargs):
        Interrupted.received = signal.SIGTERM  # what the CLI's handler records before it raises
        raise SystemError("Objects/listobject.c:338: bad argument to internal function")

    monkeypatch.setattr(runner, "_run", step_hit_by_sigterm)
    monkeypatch.setattr(Interrupted, "received", None)
    r = cli("run", recipe, "--out", tmp_path / "run")
    line = assert_refused(r, "interrupted (SIGTERM) during step setup")
    assert r.code == 143 and "SystemError" not in line
    # without a signal, the same error is a bug, reported as one
    monkeypatch.setattr(runner, "_run", lambda *a, **k: (_ for _ in ()).throw(SystemError("bad argument")))
    Interrupted.received = None
    r = cli("run", recipe, "--out", tmp_path / "run2")
    assert r.code == 1 and "unexpected SystemError" in assert_refused(r)
