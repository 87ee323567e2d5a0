"""Dataset loaders on files written in the real formats (IDX for Fashion-MNIST, pickles for CIFAR)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.protocol.datasets import (
    DatasetNotFound,
    load_cifar,
    load_digits,
    load_fashion_mnist,
    read_idx,
    stratified_subset,
)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def write_fmnist(folder: Path, n_train: int = 20, n_test: int = 10, compress: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write_idx(folder / (stem + (".gz" if compress else "")), array, compress)
    return arrays


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = write_fmnist(tmp_path)
    data = load_fashion_mnist(tmp_path)
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0
    np.testing.assert_allclose(data.train_x[:, 0].numpy() * 255, arrays["train-images-idx3-ubyte"], atol=1e-3)
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.num_classes == 10 and len(data.fingerprint) == 24


def test_fashion_mnist_torchvision_layout_uncompressed(tmp_path):
    write_fmnist(tmp_path / "FashionMNIST" / "raw", compress=False)
    assert load_fashion_mnist(tmp_path).train_x.shape[0] == 20


def test_fingerprint_changes_with_content(tmp_path):
    write_fmnist(tmp_path / "a")
    arrays = write_fmnist(tmp_path / "b")
    labels = arrays["train-labels-idx1-ubyte"].copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(tmp_path / "b" / "train-labels-idx1-ubyte.gz", labels)
    assert load_fashion_mnist(tmp_path / "a").fingerprint != load_fashion_mnist(tmp_path / "b").fingerprint


def test_truncated_idx_is_rejected(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.zeros((4, 28, 28)), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.protocol.datasets.FASHION_MNIST_DEBIAN_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("UNLEARN_BENCH_DATA", raising=False)
    with pytest.raises(DatasetNotFound, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist()


def write_cifar(root: Path, name: str, n_per_file: int = 6) -> tuple[np.ndarray, list[int]]:
    """Files in the official python-pickle layout, with bytes keys as the real release has."""
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder, files, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    first = None
    for fname in files:
        data = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10 if name == "cifar10" else 100, n_per_file).tolist()
        with open(folder / fname, "wb") as handle:
            pickle.dump({b"batch_label": fname.encode(), key: labels, b"data": data}, handle)
        first = first or (data, labels)
    return first


@pytest.mark.parametrize("name,n_train,classes", [("cifar10", 30, 10), ("cifar100", 6, 100)])
def test_cifar_pickles(tmp_path, name, n_train, classes):
    data0, labels0 = write_cifar(tmp_path, name)
    data = load_cifar(name, tmp_path)
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.num_classes == classes
    np.testing.assert_allclose(data.train_x[0].numpy() * 255, data0[0].reshape(3, 32, 32), atol=1e-3)
    assert data.train_y[: len(labels0)].tolist() == labels0


def test_missing_cifar_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFound, match="cifar10 not found"):
        load_cifar("cifar10", tmp_path)


def test_digits_and_stratified_subset():
    data = load_digits()
    assert data.train_x.shape[1:] == (1, 8, 8) and len(data.train_y) + len(data.test_y) == 1797
    idx = stratified_subset(data.train_y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    counts = torch.bincount(data.train_y[idx], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert torch.equal(idx, stratified_subset(data.train_y, 100, seed=0))
    assert not torch.equal(idx, stratified_subset(data.train_y, 100, seed=1))


def test_an_explicit_data_root_without_the_dataset_is_an_error_naming_it(tmp_path):
    """A wrong --data-root must not silently fall back to the system copy."""
    with pytest.raises(DatasetNotFound, match=str(tmp_path)):
        load_fashion_mnist(tmp_path)
