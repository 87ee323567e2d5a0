"""The user's own dataset files: an ImageFolder tree of images, or ``.npz`` arrays, as :class:`DatasetArrays`
fingerprinted as the built-in datasets are (harness/protocol/datasets.py); registered as ``imagefolder`` and
``npz``, and read from the suite's ``[data] root`` (or ``--data-root``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.protocol.datasets import DATASETS, DatasetArrays, DatasetNotFound, _with_fingerprint

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
IMAGEFOLDER_LAYOUT = ("<root>/train/<class>/<image>.png and <root>/test/<class>/<image>.png, or <root>/<class>/"
                      "<image>.png (then a fixed, class-stratified fifth of each class is the test set)")
HELD_OUT = 0.2  # the test share of a single ImageFolder tree, per class


def _class_folders(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _images_of(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _read_images(files: list[Path], mode: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), *size[::-1], 3 if mode == "RGB" else 1), dtype=np.uint8)
    for i, file in enumerate(files):
        with Image.open(file) as image:
            image = image.convert(mode)
            if image.size != size:
                raise ValueError(f"imagefolder: {file} is {image.size[0]}x{image.size[1]} but the first image is "
                                 f"{size[0]}x{size[1]}; every image must have the same size (resize them first)")
            out[i] = np.asarray(image).reshape(out.shape[1:])
    return out


def load_imagefolder(root: str | Path | None = None) -> DatasetArrays:
    """An ImageFolder tree (one folder per class, sorted by name: the label is the folder's position), as
    torchvision's ImageFolder reads it. Grayscale when every image is, else RGB; every image the same size."""
    from PIL import Image

    if root is None:
        raise DatasetNotFound(f"imagefolder needs a root: set [data] root = \"<folder>\" in the suite (or pass "
                              f"--data-root) to a folder laid out as {IMAGEFOLDER_LAYOUT}")
    base = Path(root)
    if not base.is_dir():
        raise DatasetNotFound(f"imagefolder: the folder {base} does not exist; expected {IMAGEFOLDER_LAYOUT}")
    split_tree = (base / "train").is_dir() and (base / "test").is_dir()
    tree = base / "train" if split_tree else base
    classes = _class_folders(tree) if tree.is_dir() else []
    files = {c.name: _images_of(c) for c in classes}
    if not classes or not any(files.values()):
        raise DatasetNotFound(f"imagefolder: no class folders with images under {base}; expected "
                              f"{IMAGEFOLDER_LAYOUT}")
    names = tuple(files)
    if split_tree:
        test_classes = {c.name: _images_of(c) for c in _class_folders(base / "test")}
        extra = sorted(set(test_classes) - set(names))
        if extra:
            raise ValueError(f"imagefolder: {base / 'test'} has classes that {base / 'train'} lacks: {extra}")
        train_files = [(f, i) for i, c in enumerate(names) for f in files[c]]
        test_files = [(f, i) for i, c in enumerate(names) for f in test_classes.get(c, [])]
    else:
        rng = np.random.default_rng(0)
        train_files, test_files = [], []
        for i, c in enumerate(names):
            order = rng.permutation(len(files[c]))
            n_test = round(HELD_OUT * len(order))
            test_files += [(files[c][j], i) for j in sorted(order[:n_test])]
            train_files += [(files[c][j], i) for j in sorted(order[n_test:])]
    everything = [f for f, _ in train_files + test_files]
    modes = set()
    with Image.open(everything[0]) as first:
        size = first.size
    for file in everything:
        with Image.open(file) as image:
            modes.add(image.mode)
    mode = "L" if modes <= {"L", "1", "I", "I;16", "F"} else "RGB"
    to_x = lambda pairs: torch.from_numpy(_read_images([f for f, _ in pairs], mode, size).astype(np.float32)
                                          / 255.0).permute(0, 3, 1, 2).contiguous()
    to_y = lambda pairs: torch.tensor([label for _, label in pairs], dtype=torch.int64)
    return _with_fingerprint("imagefolder", to_x(train_files), to_y(train_files), to_x(test_files),
                             to_y(test_files), len(names), names)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_images(array: np.ndarray, where: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) images, uint8 (0-255) or float in [0, 1], as float32 NCHW."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
        a = np.transpose(a, (0, 3, 1, 2))  # channels last
    elif not (a.ndim == 4 and a.shape[1] in (1, 3, 4)):
        raise ValueError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4; "
                         f"got shape {a.shape}")
    if a.dtype == np.uint8:
        return torch.from_numpy(a.astype(np.float32) / 255.0)
    if not np.issubdtype(a.dtype, np.floating) or (a.size and (a.min() < 0 or a.max() > 1)):
        raise ValueError(f"{where}: images must be uint8 (0-255) or floats in [0, 1] (got {a.dtype}, range "
                         f"{a.min() if a.size else 0}..{a.max() if a.size else 0}); "
                         "[data] normalize = \"per-channel\" standardises them afterwards")
    return torch.from_numpy(a.astype(np.float32))


def load_npz(root: str | Path | None = None) -> DatasetArrays:
    """Arrays in one ``.npz`` file: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (labels 0..C-1); ``root`` is
    the file, or a folder holding exactly one ``.npz``."""
    expected = f"a .npz file with arrays {', '.join(NPZ_KEYS)} (images uint8 or floats in [0, 1], labels 0..C-1)"
    if root is None:
        raise DatasetNotFound(f"npz needs a root: set [data] root = \"<file>.npz\" in the suite (or pass "
                              f"--data-root): {expected}")
    path = Path(root)
    if path.is_dir():
        found = sorted(path.glob("*.npz"))
        if len(found) != 1:
            raise DatasetNotFound(f"npz: {path} holds {len(found)} .npz files; name the file itself as the root "
                                  f"({expected})")
        path = found[0]
    if not path.is_file():
        raise DatasetNotFound(f"npz: {path} not found; expected {expected}")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in NPZ_KEYS if k not in npz.files]
        if missing:
            raise ValueError(f"npz: {path} lacks {', '.join(missing)} (it has {', '.join(npz.files)}); expected "
                             f"{expected}")
        arrays = {k: npz[k] for k in NPZ_KEYS}
    labels = {k: np.asarray(arrays[k]).reshape(-1) for k in ("y_train", "y_test")}
    for k, y in labels.items():
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise ValueError(f"npz: {path} {k} must be non-negative integer labels, got {y.dtype}")
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(arrays[xk]) != len(labels[yk]):
            raise ValueError(f"npz: {path} has {len(arrays[xk])} {xk} but {len(labels[yk])} {yk}")
    train_x, test_x = _npz_images(arrays["x_train"], f"npz {path} x_train"), _npz_images(arrays["x_test"],
                                                                                          f"npz {path} x_test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"npz: {path} x_train images are {tuple(train_x.shape[1:])}, x_test {tuple(test_x.shape[1:])}")
    num_classes = int(max(labels["y_train"].max(initial=0), labels["y_test"].max(initial=0))) + 1
    return _with_fingerprint("npz", train_x, torch.from_numpy(labels["y_train"].astype(np.int64)), test_x,
                             torch.from_numpy(labels["y_test"].astype(np.int64)), num_classes)


DATASETS.register("imagefolder", load_imagefolder, __name__)
DATASETS.register("npz", load_npz, __name__)
