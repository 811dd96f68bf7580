"""README stays true: its own-model recipe is a valid recipe, and what it names exists."""
import re
from pathlib import Path

import numpy as np

from edgeprune.recipe.schema import load_recipe

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    at = README.index(marker)
    return re.search(r"```yaml\n(.*?)```", README[at:], re.S).group(1)


def test_own_model_recipe_is_valid_and_reads_paths_beside_it(tmp_path):
    text = _block_after("## Your own model")
    byom = tmp_path / "byom"
    byom.mkdir()
    (byom / "mycnn.keras").write_bytes(b"")  # the recipe names it; the schema checks names, not contents
    np.savez(byom / "mydata.npz", x_train=np.zeros((4, 8, 8, 1), np.uint8), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 8, 8, 1), np.uint8), y_test=np.zeros(2, int))
    recipe_path = byom / "myrecipe.yaml"
    recipe_path.write_text(text)
    recipe = load_recipe(recipe_path)
    assert len(recipe.steps) == 6
    # run from elsewhere: the recipe's own folder resolves its paths
    assert Path(recipe.model) == byom / "mycnn.keras"
    assert Path(recipe.dataset.name) == byom / "mydata.npz"


def test_named_make_targets_and_pages_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"make ([a-z][a-z-]+)", README)):
        assert re.search(rf"(?m)^{re.escape(target)}:", makefile), f"README names `make {target}`, the Makefile lacks it"
    for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"
    for page in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.name} links {link}, which does not exist"
