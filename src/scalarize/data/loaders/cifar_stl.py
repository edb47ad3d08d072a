"""CIFAR-10 + STL-10: multi-domain learning with two domains of one 9-class label space.

CIFAR-10 (Krizhevsky 2009; 32x32) and STL-10 (Coates et al. 2011; 96x96, from ImageNet) share
nine classes. Each has one class the other lacks: CIFAR-10's *frog* and STL-10's *monkey*; both are
dropped, and the task ``label`` has the 9 shared classes in CIFAR-10's order:

    label  class        CIFAR-10 label   STL-10 label (1-based, as in *_y.bin)
    0      airplane     0                1 airplane
    1      automobile   1                3 car
    2      bird         2                2 bird
    3      cat          3                4 cat
    4      deer         4                5 deer
    5      dog          5                6 dog
    6      horse        7                7 horse
    7      ship         8                9 ship
    8      truck        9                10 truck
    -      (dropped)    6 frog           8 monkey

Reads the official distributions under ``root`` (the layout torchvision uses too)::

    root/
      cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch
          pickled dicts: b"data" uint8 [10000, 3072] (1024 red, 1024 green, 1024 blue values,
          each 32x32 row-major) and b"labels" (10,000 ints in 0..9)
      stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin
          *_X.bin: uint8, 3x96x96 per image, each channel stored column-major;
          *_y.bin: one uint8 label in 1..10 per image

Validation is carved from each domain's train split with a fixed seed. Both domains are resized
to ``resize`` x ``resize`` (default 32: CIFAR-10 as is, STL-10 downsampled with antialiasing).
The ``storage`` option (:mod:`scalarize.data.storage`) holds them in memory as float32 (the
default, ``auto``, when they fit the memory budget: all of both at 32 px take 0.7 GiB), or writes
the resized uint8 images once to the decoded cache and streams them from there (``cache``).
The files are read directly (a few seconds; nothing is cached).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, ImageSplit, Split
from scalarize.data.loaders._common import (
    DataFileError,
    carve_indices,
    check_fraction,
    check_int,
    files_digest,
    require,
    resize_uint8,
    resolve_root,
    subsample,
    to_float,
)
from scalarize.data.storage import ImageSource, choose_storage, decoded_images, open_decoded
from scalarize.data.task import Task

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "horse", "ship", "truck")
# original label -> shared label; -1 drops the class
CIFAR_TO_SHARED = np.array([0, 1, 2, 3, 4, 5, -1, 6, 7, 8], dtype=np.int64)  # 6 frog dropped
STL_TO_SHARED = np.array([-1, 0, 2, 1, 3, 4, 5, 6, -1, 7, 8], dtype=np.int64)  # index 1..10; 8 monkey dropped
DOMAINS = ("cifar10", "stl10")
NEEDS = (
    "CIFAR-10 + STL-10 needs cifar-10-batches-py/ (data_batch_1..5, test_batch) and "
    "stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin) under root"
)
STL_IMAGE_BYTES = 3 * 96 * 96
STORAGES = ("auto", "memory", "cache")


class BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 python batch holds: dicts, lists, bytes, strings, numbers and
    numpy arrays. Anything else (a callable that would run when loaded) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 ``[N, 3, 32, 32]``, labels ``[N]``) from one pickled CIFAR-10 batch, read with
    :class:`BatchUnpickler` (a shared copy of the dataset cannot run code)."""
    require(path, NEEDS)
    try:
        with open(path, "rb") as file:
            batch = BatchUnpickler(file, encoding="bytes").load()
    except pickle.UnpicklingError as error:
        if "is not allowed" in str(error):
            raise DataFileError(f"{path}: refused: {error} (a file that would run code when loaded)") from None
        raise DataFileError(f"{path}: truncated or not a CIFAR-10 batch (cannot unpickle: UnpicklingError)") from None
    except Exception as error:  # a truncated or foreign pickle fails in many ways
        raise DataFileError(
            f"{path}: truncated or not a CIFAR-10 batch (cannot unpickle: {type(error).__name__})"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFileError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(f"{path}: expected b'data' uint8 rows of 3072 values, got {data.dtype} {data.shape}")
    if len(data) != len(labels):
        raise DataFileError(f"{path}: truncated (expected {len(labels)} rows, got {len(data)})")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{path}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def read_stl(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images ``[N, 3, 96, 96]`` as a read-only memory map, labels 1..10) of an STL-10 split."""
    x_path = require(folder / f"{split}_X.bin", NEEDS)
    y_path = require(folder / f"{split}_y.bin", NEEDS)
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64)
    if len(labels) == 0:
        raise DataFileError(f"{y_path}: empty (expected one byte per image, labels 1..10)")
    if labels.min() < 1 or labels.max() > 10:
        raise DataFileError(f"{y_path}: labels outside 1..10")
    expected, size = len(labels) * STL_IMAGE_BYTES, os.path.getsize(x_path)
    if size != expected:
        raise DataFileError(
            f"{x_path}: truncated (expected {len(labels)} images of {STL_IMAGE_BYTES} bytes = "
            f"{expected} bytes, one per label of {y_path.name}; got {size} bytes)"
        )
    images = np.memmap(x_path, dtype=np.uint8, mode="r", shape=(len(labels), 3, 96, 96))
    return images, labels


def _stl_images(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    # each channel is stored column-major: swap the last two axes to get [C, H, W]
    return np.ascontiguousarray(np.asarray(images[index]).transpose(0, 1, 3, 2))


def cifar_stl(
    root: str | None = None,
    resize: int = 32,
    max_per_split: int = 0,
    val_fraction: float = 0.1,
    seed: int = 0,
    storage: str = "auto",
) -> Benchmark:
    """MDL benchmark: domains ``cifar10`` and ``stl10``, task ``label`` (9 shared classes).

    Args:
        root: the folder holding ``cifar-10-batches-py/`` and ``stl10_binary/``; default
            ``$SCALARIZE_DATA``.
        resize: the side of the square images of both domains (they must match for one model).
        max_per_split: at most this many images per domain and split (a fixed random subset
            drawn with ``seed``), to try things quickly; 0 loads all.
        val_fraction: the part of each domain's train split held out for validation.
        seed: the seed of the validation split and of the subsets.
        storage: where the images live: ``auto`` (memory when they fit the memory budget, else
            the decoded cache), ``memory`` or ``cache`` (:mod:`scalarize.data.storage`).
    """
    check_int("resize", resize, 1)
    check_int("max_per_split", max_per_split, 0)
    check_fraction("val_fraction", val_fraction)
    if storage not in STORAGES:
        raise ValueError(f"storage: expected one of {', '.join(STORAGES)}; got {storage!r}")
    path = resolve_root(root, "", NEEDS)
    cifar_dir = require(path / "cifar-10-batches-py", NEEDS, folder=True)
    stl_dir = require(path / "stl10_binary", NEEDS, folder=True)

    parts = [read_cifar_batch(cifar_dir / f"data_batch_{i}") for i in range(1, 6)]
    cifar = {
        "train": (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
        "test": read_cifar_batch(cifar_dir / "test_batch"),
    }
    stl = {s: read_stl(stl_dir, s) for s in ("train", "test")}

    plans = {}
    for domain, source, mapping, take in (
        ("cifar10", cifar, CIFAR_TO_SHARED, lambda x, i: x[i]),
        ("stl10", stl, STL_TO_SHARED, _stl_images),
    ):
        shared = {s: mapping[labels] for s, (_, labels) in source.items()}
        kept = {s: np.flatnonzero(shared[s] >= 0) for s in source}
        train_pos, val_pos = carve_indices(len(kept["train"]), val_fraction, seed)
        index = {
            "train": subsample(kept["train"][train_pos], max_per_split, seed),
            "val": subsample(kept["train"][val_pos], max_per_split, seed + 1),
            "test": subsample(kept["test"], max_per_split, seed + 2),
        }
        plans[domain] = (source, shared, take, index)

    images = sum(len(rows) for _, _, _, index in plans.values() for rows in index.values())
    key = {
        "root": str(path),
        "resize": resize,
        "max_per_split": max_per_split,
        "val_fraction": val_fraction,
        "seed": seed,
        "version": 2,
        "files": files_digest(
            [cifar_dir / f"data_batch_{i}" for i in range(1, 6)]
            + [cifar_dir / "test_batch"]
            + [stl_dir / f"{s}_{p}.bin" for s in ("train", "test") for p in "Xy"]
        ),
    }
    splits = [f"{d}_{s}" for d in plans for s in ("train", "val", "test")]
    mode = choose_storage(
        storage,
        images,
        (3, resize, resize),
        allowed=("auto", "memory", "cache"),
        cached=open_decoded("cifar_stl", key, splits) is not None,
    )
    stores = None
    if mode == "cache":
        sources = {}
        for domain, (source, _, take, index) in plans.items():
            for split, rows in index.items():
                images_of = source["test" if split == "test" else "train"][0]

                def fill(start, stop, out, images_of=images_of, rows=rows, take=take):
                    out[:] = resize_uint8(take(images_of, rows[start:stop]), resize)

                sources[f"{domain}_{split}"] = ImageSource(len(rows), (3, resize, resize), fill)
        stores = decoded_images("cifar_stl", key, sources)

    data: dict[str, dict[str, Split | ImageSplit]] = {}
    for domain, (source, shared, take, index) in plans.items():
        data[domain] = {}
        for split, rows in index.items():
            origin = "test" if split == "test" else "train"
            labels = {"label": torch.as_tensor(shared[origin][rows])}
            if stores is not None:
                data[domain][split] = ImageSplit(stores[f"{domain}_{split}"], labels)
            else:
                data[domain][split] = Split(to_float(resize_uint8(take(source[origin][0], rows), resize)), labels)
    return Benchmark(
        "cifar_stl",
        "mdl",
        [Task("label", "multiclass", len(CLASSES))],
        data,
        description="one 9-class task (the classes CIFAR-10 and STL-10 share) over two domains",
        extras={"root": os.fspath(path), "classes": list(CLASSES), "storage": mode},
    )
