"""Recipes are validated strictly: the error names the key and its line."""
from pathlib import Path

import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
model: lenet5
dataset:
  name: fashion_mnist
steps:
  - train: {epochs: 1}
  - prune:
      ratio: 0.5
      criterion: l1
  - export: {formats: [tflite]}
"""


def _write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_shipped_recipes_validate():
    for path in sorted((ROOT / "recipes").glob("*.yaml")) + [ROOT / "tests/data/tiny_recipe.yaml"]:
        recipe = load_recipe(path)
        assert recipe.step_specs()


def test_defaults_are_filled(tmp_path):
    recipe = load_recipe(_write(tmp_path, GOOD))
    kinds = [k for k, _ in recipe.step_specs()]
    assert kinds == ["train", "prune", "export"]
    prune = recipe.step_specs()[1][1]
    assert prune.round_to == 1 and prune.protect_first is None  # unset: pruning decides (pruning.api.analyse)


@pytest.mark.parametrize("old,new,expected", [
    ("criterion: l1", "critrion: l1", r"r.yaml:9: 'steps\[1\].prune.critrion': unknown key"),
    ("ratio: 0.5", "ratio: 1.5", r"r.yaml:8: 'steps\[1\].prune.ratio': Input should be less than 1"),
    ("- train:", "- trian:", r"r.yaml:6: 'steps\[0\].trian': unknown step 'trian'"),
    ("{epochs: 1}", "{epochs: many}", r"r.yaml:6: 'steps\[0\].train.epochs'"),
    ("[tflite]", "[tflite, coreml]", r"'steps\[2\].export.formats\[1\]'"),
    ("name: t\n", "name: t\nmodle: x\n", r"r.yaml:2: 'modle': unknown key"),
    ("model: lenet5\n", "", r"'model': required key is missing"),
])
def test_bad_recipe_names_the_key_and_line(tmp_path, old, new, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe(_write(tmp_path, GOOD.replace(old, new, 1)))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(RecipeError, match=r"r.yaml:\d+: not valid YAML"):
        load_recipe(_write(tmp_path, GOOD + "  - prune: {ratio: [\n"))


def test_lr_schedule_cosine_decays_to_zero_over_the_steps_epochs():
    from edgeprune.recipe.steps.train import TrainStep
    from edgeprune.train import learning_rate_schedule

    assert TrainStep().lr_schedule == "constant" and TrainStep(lr_schedule="cosine").lr_schedule == "cosine"
    with pytest.raises(Exception):
        TrainStep(lr_schedule="step")
    assert learning_rate_schedule(1e-3, "constant", 100) == 1e-3
    cosine = learning_rate_schedule(1e-3, "cosine", 100)
    assert float(cosine(0)) == pytest.approx(1e-3)
    assert float(cosine(50)) == pytest.approx(5e-4, rel=1e-3)
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)


def test_relative_model_and_dataset_paths_resolve_from_the_recipes_folder(tmp_path, monkeypatch):
    """Issue 23: `cd elsewhere && edgeprune run byom/r.yaml` found no `mycnn.keras` beside the recipe."""
    from edgeprune.recipe.schema import check_model_file

    byom = tmp_path / "byom"
    (byom / "data").mkdir(parents=True)
    (byom / "mycnn.keras").write_bytes(b"not read here")
    (byom / "data" / "my.npz").write_bytes(b"")
    (byom / "images").mkdir()
    (byom / "r.yaml").write_text("model: mycnn.keras\ndataset: data/my.npz\nsteps:\n  - train: {epochs: 1}\n")
    (byom / "s.yaml").write_text("model: savedmodel\ndataset: {name: images}\nsteps:\n  - train: {epochs: 1}\n")
    (byom / "savedmodel").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    recipe = load_recipe(Path("../byom/r.yaml"))
    assert recipe.model == str(byom / "mycnn.keras") and recipe.dataset.name == str(byom / "data" / "my.npz")
    check_model_file(recipe.model)  # no "model file 'mycnn.keras' does not exist"
    folders = load_recipe(byom / "s.yaml")
    assert folders.model == str(byom / "savedmodel") and folders.dataset.name == str(byom / "images")

    # names and absolute paths stay as written; a missing file is named where it was looked for
    assert load_recipe(_write(tmp_path, GOOD)).model == "lenet5"
    assert load_recipe(_write(tmp_path, GOOD)).dataset.name == "fashion_mnist"
    absolute = _write(tmp_path, f"model: {byom / 'mycnn.keras'}\ndataset: mnist\nsteps:\n  - train: {{}}\n")
    assert load_recipe(absolute).model == str(byom / "mycnn.keras")
    missing = load_recipe(_write(tmp_path, "model: gone.keras\nsteps:\n  - train: {}\n"))
    with pytest.raises(RecipeError, match=str(tmp_path / "gone.keras")):
        check_model_file(missing.model)


@pytest.mark.parametrize("scaling", ["unit", "raw", "symmetric"])
def test_dataset_scaling_is_accepted(tmp_path, scaling):
    recipe = load_recipe(_write(tmp_path, GOOD.replace("  name: fashion_mnist\n", f"  name: fashion_mnist\n  scaling: {scaling}\n")))
    assert recipe.dataset.scaling == scaling
    assert load_recipe(_write(tmp_path, GOOD)).dataset.scaling is None  # the default: unit for 8-bit pixels


def test_unknown_dataset_scaling_is_one_line_naming_the_valid_ones(tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe(_write(tmp_path, GOOD.replace("  name: fashion_mnist\n", "  name: fashion_mnist\n  scaling: imagenet\n")))
    message = str(e.value)
    assert "r.yaml:5: 'dataset.scaling'" in message and "'unit', 'raw' or 'symmetric'" in message
    assert "\n" not in message
