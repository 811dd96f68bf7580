"""The whole plan is checked before any work: names, devices, datasets and step order before
TensorFlow loads (all problems at once, each with its line); layer names once the model is read,
before anything trains; a refused run leaves no folder behind."""
import subprocess
import sys
import textwrap

import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe.plan_check import layer_problems
from edgeprune.recipe.schema import load_recipe


def _recipe(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BAD = """\
name: bad
model: lenet5
dataset: fashon_mnist
steps:
  - train: {epochs: 1}
  - prune: {ratio: 0.5, criterion: l7}
  - benchmark: {devices: [qemu-arch64]}
  - export: {formats: [tflite]}
"""


def test_every_problem_at_once_with_lines_and_no_tensorflow(tmp_path):
    path = _recipe(tmp_path, BAD)
    code = ("import sys\nfrom edgeprune.recipe.schema import load_recipe\n"
            f"try:\n    load_recipe({str(path)!r})\nexcept Exception as e:\n    print(e)\n"
            "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "4 problems" in out, out
    assert "r.yaml:3: 'dataset.name': unknown dataset 'fashon_mnist'" in out
    assert "r.yaml:6: 'steps[1].prune.criterion': unknown criterion 'l7'" in out
    assert "r.yaml:7: 'steps[2].benchmark.devices': unknown device 'qemu-arch64'" in out
    assert "put an export step before it" in out
    assert out.strip().endswith("no tensorflow")


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


def test_run_refuses_unknown_layer_before_training_and_leaves_no_folder(tmp_path):
    from edgeprune.recipe import run_recipe

    path = _recipe(tmp_path, """\
        name: layers
        model: lenet5
        dataset: {name: fashion_mnist, max_train_samples: 200, test_samples: 50}
        steps:
          - train: {epochs: 50}
          - prune: {ratio: 0.5, protect: [nosuchlayer]}
        """)
    out = tmp_path / "run"
    with pytest.raises(RecipeError, match=r"r.yaml:6: 'steps\[1\].prune.protect': 'nosuchlayer' matches no layer"):
        run_recipe(path, out_dir=out, log=lambda *a: None)
    assert not out.exists()


def test_run_refuses_a_device_it_cannot_reach_before_anything(tmp_path, monkeypatch):
    from edgeprune.errors import DeviceError, EdgepruneError
    from edgeprune.recipe import run_recipe

    monkeypatch.delenv("RPI_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no user profiles with a host
    path = _recipe(tmp_path, """\
        name: board
        model: lenet5
        dataset: mnist
        steps:
          - train: {epochs: 50}
          - export: {formats: [tflite]}
          - benchmark: {devices: [host, rpi4]}
        """)
    with pytest.raises(DeviceError, match="no SSH host for device 'rpi4'"):
        run_recipe(path, out_dir=tmp_path / "run", log=lambda *a: None)
    with pytest.raises(EdgepruneError, match="--device: unknown device 'hots'"):
        run_recipe(path, out_dir=tmp_path / "run", devices=["hots"], log=lambda *a: None)
    assert not (tmp_path / "run").exists()
