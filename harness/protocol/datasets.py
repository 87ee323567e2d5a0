"""Datasets as in-memory tensors: Fashion-MNIST, MNIST, scikit-learn digits, SVHN, CIFAR-10/100 (read from
torchvision's on-disk layouts), and the user's own: an ImageFolder tree of images, or ``.npz`` arrays.

Every loader returns a :class:`DatasetArrays` with images as float32 NCHW tensors in [0, 1] and labels
as int64; the fingerprint (cache keys) is a hash of those arrays, computed the same way for every loader, and
class-balanced subsets and normalisation are applied to the arrays by the suite (harness/protocol/suite.py), so
they too work alike for all. Nothing is downloaded at run time; a missing dataset raises :class:`DatasetNotFound`
with one line naming the folder and the layout expected there. A plugin adds a loader with
``DATASETS.register(name, loader)`` (a file, or an ``unlearn_bench.datasets`` entry point).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.core.registry import Registry

DATA_ROOT_ENV = "UNLEARN_BENCH_DATA"
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


class DatasetNotFound(FileNotFoundError):
    """The dataset's files are not on this machine; the message says how to get them."""


@dataclass(frozen=True)
class DatasetArrays:
    """A dataset held in memory: train and test images in [0, 1] (N, C, H, W) and labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    fingerprint: str = field(default="")
    classes: tuple[str, ...] = ()  # class names where the files carry them (ImageFolder folders)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def fingerprint_arrays(*arrays: torch.Tensor) -> str:
    """A stable sha256 of array contents, shapes and dtypes (used in cache keys)."""
    digest = hashlib.sha256()
    for array in arrays:
        a = array.detach().cpu().contiguous()
        digest.update(f"{tuple(a.shape)}|{a.dtype}|".encode())
        digest.update(a.numpy().tobytes())
    return digest.hexdigest()[:24]


def _with_fingerprint(name: str, train_x, train_y, test_x, test_y, num_classes: int,
                      classes: tuple[str, ...] = ()) -> DatasetArrays:
    fp = fingerprint_arrays(train_x, train_y, test_x, test_y)
    return DatasetArrays(name, train_x, train_y, test_x, test_y, num_classes, fp, classes)


def _base_root(root: str | Path | None) -> Path:
    """The folder a dataset is looked for in: ``root``, else $UNLEARN_BENCH_DATA, else ./data."""
    return Path(root or os.environ.get(DATA_ROOT_ENV) or "data")


# ---------------------------------------------------------------- IDX (MNIST family)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), the MNIST distribution format."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype_code:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = int(np.prod(shape)) * dtype.itemsize
    payload = raw[4 + 4 * ndim :]
    if len(payload) != expected:
        raise ValueError(f"{path}: truncated IDX file ({len(payload)} of {expected} bytes)")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


_FMNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _find_idx_dir(root: Path | None) -> Path | None:
    """Find a folder holding the four Fashion-MNIST IDX files (plain or .gz).

    An explicit ``root`` is the only place searched (a wrong --data-root must not silently fall back to
    another copy); without one, $UNLEARN_BENCH_DATA and then the Debian package's folder.
    """
    bases = [root] if root else [Path(p) for p in [os.environ.get(DATA_ROOT_ENV)] if p]
    candidates = [folder for base in bases
                  for folder in (base, base / "fashion-mnist", base / "FashionMNIST" / "raw", base / "raw")]
    if not root:
        candidates.append(FASHION_MNIST_DEBIAN_DIR)
    for folder in candidates:
        if all(_idx_file(folder, stem) is not None for stem in _FMNIST_FILES.values()):
            return folder
    return None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def load_fashion_mnist(root: str | Path | None = None) -> DatasetArrays:
    folder = _find_idx_dir(Path(root) if root else None)
    if folder is None and root:
        raise DatasetNotFound(
            f"Fashion-MNIST not found under the data root {root} (looked for the four IDX files, plain or .gz, "
            "in it and in its fashion-mnist/, FashionMNIST/raw/ and raw/ folders)."
        )
    if folder is None:
        raise DatasetNotFound(
            "Fashion-MNIST not found. Install it with `sudo apt-get install dataset-fashion-mnist` "
            f"(files land in {FASHION_MNIST_DEBIAN_DIR}), or pass --data-root / set {DATA_ROOT_ENV} "
            "to a folder with the four IDX files (a torchvision root with FashionMNIST/raw/ works too)."
        )
    arrays = {key: read_idx(_idx_file(folder, stem)) for key, stem in _FMNIST_FILES.items()}  # type: ignore[arg-type]
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))
    return _with_fingerprint(
        "fashion-mnist", to_x(arrays["train_x"]), to_y(arrays["train_y"]),
        to_x(arrays["test_x"]), to_y(arrays["test_y"]), 10,
    )


# ---------------------------------------------------------------- digits (scikit-learn)


def load_digits(root: str | Path | None = None) -> DatasetArrays:
    """scikit-learn's bundled 8x8 digits; a fixed 80/20 train/test split (seed 0)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    order = np.random.default_rng(0).permutation(len(y))
    n_train = int(0.8 * len(y))
    tr, te = torch.from_numpy(order[:n_train]), torch.from_numpy(order[n_train:])
    return _with_fingerprint("digits", x[tr], y[tr], x[te], y[te], 10)


# ---------------------------------------------------------------- CIFAR (python pickle format)

_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


def _read_cifar_batches(folder: Path, names: list[str], label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        xs.append(data)
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0)
    return x, torch.from_numpy(np.concatenate(ys))


def load_cifar(name: str, root: str | Path | None = None) -> DatasetArrays:
    """CIFAR-10/100 from the official python-pickle release under ``root`` (torchvision's layout)."""
    subdir, train_names, test_names, label_key, num_classes = _CIFAR_LAYOUT[name]
    base = Path(root or os.environ.get(DATA_ROOT_ENV) or "data")
    folder = base / subdir
    missing = [n for n in train_names + test_names if not (folder / n).is_file()]
    if missing:
        raise DatasetNotFound(
            f"{name} not found under {folder} (missing {', '.join(missing)}). Download the python version "
            "of the dataset (e.g. torchvision's CIFAR loader with download=True on a machine with internet) "
            f"and pass its root with --data-root or {DATA_ROOT_ENV}."
        )
    train_x, train_y = _read_cifar_batches(folder, train_names, label_key)
    test_x, test_y = _read_cifar_batches(folder, test_names, label_key)
    return _with_fingerprint(name, train_x, train_y, test_x, test_y, num_classes)


# ---------------------------------------------------------------- MNIST (IDX, torchvision's layout)


def load_mnist(root: str | Path | None = None) -> DatasetArrays:
    """MNIST from its four IDX files (plain or .gz) in ``root``/MNIST/raw/ (torchvision's layout), ``root``/mnist/
    or ``root`` itself."""
    base = _base_root(root)
    for folder in (base / "MNIST" / "raw", base / "mnist", base):
        if all(_idx_file(folder, stem) is not None for stem in _FMNIST_FILES.values()):
            break
    else:
        raise DatasetNotFound(
            f"mnist not found under {base}: expected {', '.join(_FMNIST_FILES.values())} (plain or .gz) in "
            f"{base / 'MNIST' / 'raw'} (torchvision's layout) or in {base} itself; nothing is downloaded, so copy "
            f"them there or pass the folder that has them with --data-root or {DATA_ROOT_ENV}")
    arrays = {key: read_idx(_idx_file(folder, stem)) for key, stem in _FMNIST_FILES.items()}  # type: ignore[arg-type]
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))
    return _with_fingerprint("mnist", to_x(arrays["train_x"]), to_y(arrays["train_y"]),
                             to_x(arrays["test_x"]), to_y(arrays["test_y"]), 10)


# ---------------------------------------------------------------- SVHN (.mat, torchvision's layout)

_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def _read_svhn(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import scipy.io

    mat = scipy.io.loadmat(path)
    x = np.transpose(np.asarray(mat["X"], dtype=np.uint8), (3, 2, 0, 1))  # (32, 32, 3, N) -> (N, 3, 32, 32)
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    y[y == 10] = 0  # the digit 0 is stored as label 10 (torchvision maps it the same way)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y)


def load_svhn(root: str | Path | None = None) -> DatasetArrays:
    """SVHN's cropped digits from train_32x32.mat and test_32x32.mat in ``root`` (torchvision's layout) or
    ``root``/svhn/ (the extra split is not read)."""
    base = _base_root(root)
    folder = next((f for f in (base, base / "svhn", base / "SVHN") if all((f / n).is_file() for n in _SVHN_FILES)),
                  None)
    if folder is None:
        raise DatasetNotFound(
            f"svhn not found under {base}: expected {' and '.join(_SVHN_FILES)} (the cropped-digits format) in "
            f"{base} or {base / 'svhn'}; nothing is downloaded, so copy them there or pass the folder that has them "
            f"with --data-root or {DATA_ROOT_ENV}")
    train_x, train_y = _read_svhn(folder / _SVHN_FILES[0])
    test_x, test_y = _read_svhn(folder / _SVHN_FILES[1])
    return _with_fingerprint("svhn", train_x, train_y, test_x, test_y, 10)


# Loaders by name: ``loader(root=None) -> DatasetArrays``. A plugin adds one with ``DATASETS.register(name, loader)``.
# The user's own files (imagefolder, npz) register from harness/protocol/own_datasets.py, imported on first use.
DATASETS: Registry[Callable[..., DatasetArrays]] = Registry("dataset", builtins=("harness.protocol.own_datasets",),
                                                            entry_points="unlearn_bench.datasets")
DATASETS.register("fashion-mnist", load_fashion_mnist, __name__)
DATASETS.register("mnist", load_mnist, __name__)
DATASETS.register("digits", load_digits, __name__)
DATASETS.register("svhn", load_svhn, __name__)
DATASETS.register("cifar10", lambda root=None: load_cifar("cifar10", root), __name__)
DATASETS.register("cifar100", lambda root=None: load_cifar("cifar100", root), __name__)
DATASET_LOADERS = DATASETS  # the flat layout's name

_MEMO: dict[tuple[str, str], DatasetArrays] = {}


def load_dataset(name: str, root: str | Path | None = None) -> DatasetArrays:
    """Load a dataset by name (memoised per process)."""
    loader = DATASETS[name]
    key = (name, str(root or ""))
    if key not in _MEMO:
        _MEMO[key] = loader(root)
    return _MEMO[key]


def stratified_subset(labels: torch.Tensor, size: int | None, seed: int) -> torch.Tensor:
    """Indices of a class-balanced subset of ``size`` items (all items when size is None), sorted."""
    n = len(labels)
    if size is None or size >= n:
        return torch.arange(n)
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    classes = np.unique(y)
    per_class = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    base, extra = divmod(size, len(classes))
    chosen = [per_class[c][: base + (1 if i < extra else 0)] for i, c in enumerate(classes)]
    return torch.from_numpy(np.sort(np.concatenate(chosen)))


def register_dataset(name: str) -> Callable[[Callable[..., DatasetArrays]], Callable[..., DatasetArrays]]:
    """``@register_dataset(name)``: a loader ``(root=None) -> DatasetArrays`` under ``name`` (a plugin file or an
    ``unlearn_bench.datasets`` entry point); build its return value with :func:`dataset_arrays`."""
    return DATASETS.decorator(name)


def dataset_arrays(name: str, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, num_classes: int | None = None) -> DatasetArrays:
    """A loader's result, fingerprinted as the built-ins' are: images float32 (N, C, H, W) in [0, 1], labels int64."""
    if num_classes is None:
        num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    return _with_fingerprint(name, train_x.float().contiguous(), train_y.long(), test_x.float().contiguous(),
                             test_y.long(), num_classes)
