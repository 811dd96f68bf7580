"""Each kind of mistake a recipe can hold that is knowable before training is refused by
load_recipe, with its line (no model, no TensorFlow needed)."""
import textwrap

import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe.schema import load_recipe

HEAD = "name: r\nmodel: lenet5\ndataset: mnist\nsteps:\n  - train: {epochs: 1}\n"

KINDS = {
    "criterion": ("  - prune: {criterion: l7}\n", r"r.yaml:6: 'steps\[1\].prune.criterion': unknown criterion 'l7'"),
    "device": ("  - export: {}\n  - benchmark: {devices: [qemu-arch64]}\n",
               r"r.yaml:7: 'steps\[2\].benchmark.devices': unknown device 'qemu-arch64'"),
    "format": ("  - export: {formats: [tflite, coreml]}\n",
               r"r.yaml:6: 'steps\[1\].export.formats\[1\]': .*unknown export format 'coreml'"),
    "precision": ("  - export: {precision: [none, int4]}\n",
                  r"r.yaml:6: 'steps\[1\].export.precision.*unknown precision 'int4'"),
    "budget key": ("  - prune: {allocation: device_cost, device: qemu-aarch64, budget: {latency: 0.3}}\n",
                   r"r.yaml:6: 'steps\[1\].prune.budget.*latency"),
    "step order": ("  - benchmark: {devices: [host]}\n  - export: {}\n",
                   r"r.yaml:6: 'steps\[1\].benchmark': benchmark measures exported files: put an export step before it"),
    "dataset": (None, r"r.yaml:3: 'dataset.name': unknown dataset 'mnst'"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_is_refused_with_its_line(tmp_path, kind):
    steps, message = KINDS[kind]
    text = HEAD + (steps or "") if steps else HEAD.replace("dataset: mnist", "dataset: mnst")
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)
