"""The whole plan is checked before any work: names, devices, datasets and step order before
TensorFlow loads (all problems at once, each with its line); layer names once the model is read,
before anything trains; a refused run leaves no folder behind."""
import subprocess
import sys
import textwrap

import pytest

from edgeprune.errors import RecipeError


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
