"""Recipes: YAML files that chain steps (train → prune → finetune → quantize → export → benchmark → report)."""
from edgeprune.recipe.schema import Recipe, load_recipe


def run_recipe(recipe_path, **kwargs):
    # the runner loads TensorFlow: importing edgeprune.recipe (to validate a recipe) does not
    from edgeprune.recipe.runner import run_recipe as _run

    return _run(recipe_path, **kwargs)


__all__ = ["Recipe", "load_recipe", "run_recipe"]
