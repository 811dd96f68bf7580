"""The whole plan is checked before any work: names, devices, datasets and step order before
TensorFlow loads (all problems at once, each with its line); layer names once the model is read,
before anything trains; a refused run leaves no folder behind."""
import textwrap

import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe.plan_check import layer_problems
from edgeprune.recipe.schema import load_recipe


def _recipe(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("steps, message", [
    ("  - export: {formats: [tflite]}\n  - quantize: {mode: qat}\n", "the QAT model is never exported"),
    ("  - export: {formats: [tflite], stages: {qat: [int8]}}\n  - quantize: {mode: qat}\n  - export: {}\n",
     "no step before this export makes stage 'qat'"),
    ("  - report: {}\n  - export: {}\n", "make it the last step"),
    ("  - prune: {allocation: device_cost, device: rpi9, budget: {reduction: 2}}\n", "unknown device 'rpi9'"),
    ("  - search: {budget: {macs: 1.0e5}, device: host, criterion: threshold_l1:k=x}\n", "bad option 'k=x'"),
])
def test_step_order_stages_and_names(tmp_path, steps, message):
    path = _recipe(tmp_path, "name: r\nmodel: lenet5\ndataset: mnist\nsteps:\n" + steps)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)


def test_a_valid_plan_passes(tmp_path):
    path = _recipe(tmp_path, """\
        name: ok
        model: lenet5
        dataset: {name: mnist}
        steps:
          - prune: {ratio: 0.5, criterion: threshold_l2:k=1.5}
          - quantize: {mode: qat}
          - export: {formats: [tflite], stages: {pruned: [none], qat: [int8]}}
          - benchmark: {devices: [host, qemu-aarch64]}
          - report: {}
        """)
    assert len(load_recipe(path).steps) == 5


def test_layer_names_match_the_model():
    from edgeprune.keras import keras
    from edgeprune.recipe.steps.prune import PruneStep
    from edgeprune.recipe.steps.quantize import QuantizeStep

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inp)
    out = keras.layers.Dense(3, name="fc1")(keras.layers.Flatten(name="flat")(x))
    model = keras.Model(inp, out, name="tiny")
    specs = [("prune", PruneStep(protect=["conv.*", "nosuch"], overrides={"fc[": 0.2})),
             ("quantize", QuantizeStep(skip_layers=["fc1", "fc9"]))]
    problems = layer_problems(specs, model)
    assert [(loc, msg.split(" (")[0]) for loc, msg in problems] == [
        (("steps", 0, "prune", "protect"), "'nosuch' matches no layer of model 'tiny'"),
        (("steps", 0, "prune", "overrides"), "'fc[' is not a valid regular expression"),
        (("steps", 1, "quantize", "skip_layers"), "'fc9' matches no layer of model 'tiny'"),
    ]
