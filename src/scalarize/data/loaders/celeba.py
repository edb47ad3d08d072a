"""CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015) from local disk.

Multi-task learning: each of the 40 binary face attributes is a ``binary`` task (Sener & Koltun
2018; Royer et al. 2023). Reads the official distribution under ``root``::

    root/
      img_align_celeba/000001.jpg ... 202599.jpg    aligned and cropped faces, 178x218
      list_attr_celeba.txt     line 1: image count; line 2: the 40 attribute names;
                               then "<file> v1 ... v40" with values -1 or 1
      list_eval_partition.txt  "<file> 0|1|2": 0 train, 1 val, 2 test

The official validation split is used (nothing carved). Images are resized to ``resize`` x
``resize`` (the aspect ratio is not kept: 178x218 faces become square). Where they live is the
``storage`` option (:mod:`scalarize.data.storage`): decoded once with PIL into the cache (uint8
files keyed by the root, the options and the files' sizes and modification times), then held in
memory as float32 when they fit the memory budget or streamed from the cache per batch; or
decoded per batch from the JPEGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, ImageSplit, Split
from scalarize.data.loaders._common import (
    DataFileError,
    check_int,
    choose_names,
    files_digest,
    read_lines,
    require,
    resolve_root,
    subsample,
)
from scalarize.data.storage import (
    STORAGES,
    JpegImages,
    choose_storage,
    decoded_images,
    jpeg_source,
    open_decoded,
    to_float_tensor,
)
from scalarize.data.task import Task

NEEDS = "CelebA needs img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt under root"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image file names, values ``[N, 40]`` in {0, 1}) from list_attr_celeba.txt."""
    lines = read_lines(path)
    if len(lines) < 2:
        raise DataFileError(f"{path}: truncated (expected a count line and an attribute-name line)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataFileError(f"{path}: line 1: expected the image count, got {lines[0][:40]!r}") from None
    names = lines[1].split()
    rows = [line for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DataFileError(f"{path}: truncated (expected {count} rows, got {len(rows)})")
    files, values = [], np.empty((count, len(names)), dtype=np.int8)
    for i, row in enumerate(rows):
        parts = row.split()
        if len(parts) != len(names) + 1 or not set(parts[1:]) <= {"1", "-1"}:
            raise DataFileError(
                f"{path}: line {i + 3}: expected a file name and {len(names)} values of -1 or 1, got {row[:60]!r}"
            )
        files.append(parts[0])
        values[i] = [v == "1" for v in parts[1:]]
    return names, files, values


def read_partition(path: Path, files: list[str]) -> np.ndarray:
    """The split code (0 train, 1 val, 2 test) of each of ``files`` from list_eval_partition.txt."""
    codes: dict[str, int] = {}
    for i, line in enumerate(read_lines(path)):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataFileError(f"{path}: line {i + 1}: expected '<file> 0|1|2', got {line[:60]!r}")
        codes[parts[0]] = int(parts[1])
    missing = [f for f in files if f not in codes]
    if missing:
        raise DataFileError(
            f"{path}: truncated (expected {len(files)} rows, one per image of list_attr_celeba.txt; "
            f"{len(missing)} missing, e.g. {missing[0]})"
        )
    return np.array([codes[f] for f in files], dtype=np.int8)


def celeba(
    root: str | None = None,
    attributes: list[str] | str | None = None,
    resize: int = 64,
    max_per_split: int = 0,
    seed: int = 0,
    storage: str = "auto",
) -> Benchmark:
    """MTL benchmark: one ``binary`` task per CelebA attribute on 3x``resize``x``resize`` faces.

    Args:
        root: the folder holding the official files; default ``$SCALARIZE_DATA/celeba``.
        attributes: the attributes to learn (names from list_attr_celeba.txt, e.g.
            ``[Smiling, Male]`` or ``"Smiling,Male"``), in this order; default all 40.
        resize: the side of the square images; 0 keeps the native 178x218.
        max_per_split: at most this many images per split (a fixed random subset drawn with
            ``seed``), to try things quickly; 0 loads all.
        seed: the seed of that subset.
        storage: where the images live: ``auto`` (memory when they fit the memory budget, else
            the decoded cache), ``memory``, ``cache`` or ``jpeg`` (:mod:`scalarize.data.storage`).
    """
    check_int("resize", resize, 0)
    check_int("max_per_split", max_per_split, 0)
    if storage not in STORAGES:
        raise ValueError(f"storage: expected one of {', '.join(STORAGES)}; got {storage!r}")
    path = resolve_root(root, "celeba", NEEDS)
    images_dir = require(path / "img_align_celeba", NEEDS, folder=True)
    attr_file = require(path / "list_attr_celeba.txt", NEEDS)
    partition_file = require(path / "list_eval_partition.txt", NEEDS)

    names, files, values = read_attributes(attr_file)
    chosen = choose_names("attributes", attributes, names)
    codes = read_partition(partition_file, files)
    index = {
        split: subsample(np.flatnonzero(codes == code), max_per_split, seed + code)
        for split, code in SPLIT_CODES.items()
    }
    for split, rows in index.items():
        if len(rows) == 0:
            raise DataFileError(f"{partition_file}: no image in the {split} split")

    folder = os.fspath(images_dir)  # strings, not Path objects: ~10x faster for 0.2 million files
    paths = {split: [os.path.join(folder, files[i]) for i in rows.tolist()] for split, rows in index.items()}
    all_paths = [p for split in SPLIT_CODES for p in paths[split]]
    key = {
        "root": str(path),
        "resize": resize,
        "max_per_split": max_per_split,
        "seed": seed,
        "files": files_digest([attr_file, partition_file, *all_paths]),
        "version": 2,
    }
    sources = {split: jpeg_source(paths[split], resize) for split in SPLIT_CODES}
    shape = sources["train"].shape
    cached = open_decoded("celeba", key, list(SPLIT_CODES)) is not None
    mode = choose_storage(storage, len(all_paths), shape, cached=cached)
    if mode == "jpeg":
        stores = {split: JpegImages(paths[split], resize, shape) for split in SPLIT_CODES}
    else:
        stores = decoded_images("celeba", key, sources)
    columns = [names.index(a) for a in chosen]
    splits = {}
    for split in SPLIT_CODES:
        targets = {a: torch.as_tensor(values[index[split], c], dtype=torch.long) for a, c in zip(chosen, columns)}
        store = stores[split]
        splits[split] = Split(to_float_tensor(store), targets) if mode == "memory" else ImageSplit(store, targets)
    return Benchmark(
        "celeba",
        "mtl",
        [Task(a, "binary", 1) for a in chosen],
        {"celeba": splits},
        description=f"CelebA: {len(chosen)} binary face attributes on aligned faces (official splits)",
        extras={"root": os.fspath(path), "attributes": chosen, "storage": mode},
    )
