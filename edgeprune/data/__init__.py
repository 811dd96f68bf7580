"""Real datasets with explicit, seeded train/validation/test splits.

``load_dataset(name)`` returns a :class:`Dataset`.  Built-in names: ``fashion_mnist``, ``mnist``,
``digits``; a path to a ``.npz`` file or to a folder of images by class loads the user's own data.
"""
from edgeprune.data.dataset import Dataset
from edgeprune.data.sources import dataset_names, load_dataset

__all__ = ["Dataset", "load_dataset", "dataset_names"]
