"""DomainNet (Peng et al., "Moment Matching for Multi-Source Domain Adaptation", ICCV 2019) from disk.

Multi-domain learning: six domains (clipart, infograph, painting, quickdraw, real, sketch) share
one 345-class task, ``category``; the scalarization weights are the domains' sampling ratios
(Royer et al. 2023). Reads the official distribution under ``root``::

    root/
      clipart/<class>/<file>.jpg ...       one folder per domain (the unzipped archives)
      clipart_train.txt, clipart_test.txt  the official split lists, one per domain and split:
      ...                                  lines "<domain>/<class>/<file>.jpg <label>", label 0..344,
                                           paths relative to root

Validation is carved from each domain's train list with a fixed seed (``val_fraction``).
DomainNet's images differ in size, so they are all resized to ``resize`` x ``resize`` (the aspect
ratio is not kept). Where they live is the ``storage`` option (:mod:`scalarize.data.storage`):
decoded once with PIL into the cache (uint8 files per domain, keyed by the root, the options and
the files' sizes and modification times), then held in memory as float32 when they fit the
memory budget or streamed from the cache per batch; or decoded per batch from the JPEGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, ImageSplit, Split
from scalarize.data.loaders._common import (
    DataFileError,
    carve_indices,
    check_fraction,
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

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
NUM_CLASSES = 345
NEEDS = "DomainNet needs <domain>/ folders and <domain>_train.txt, <domain>_test.txt under root"


def read_split_list(path: Path) -> tuple[list[str], np.ndarray]:
    """(relative image paths, labels) from an official ``<domain>_<split>.txt`` list."""
    files, labels = [], []
    for i, line in enumerate(read_lines(path)):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= NUM_CLASSES:
            raise DataFileError(
                f"{path}: line {i + 1}: expected '<domain>/<class>/<file>.jpg <label>' with a label "
                f"in 0..{NUM_CLASSES - 1}, got {line[:80]!r}"
            )
        files.append(parts[0])
        labels.append(int(parts[1]))
    if not files:
        raise DataFileError(f"{path}: empty (expected lines '<domain>/<class>/<file>.jpg <label>')")
    return files, np.array(labels, dtype=np.int64)


def domainnet(
    root: str | None = None,
    domains: list[str] | str | None = None,
    resize: int = 64,
    max_per_split: int = 0,
    val_fraction: float = 0.1,
    seed: int = 0,
    storage: str = "auto",
) -> Benchmark:
    """MDL benchmark: the chosen DomainNet domains, one 345-class task ``category``.

    Args:
        root: the folder holding the domains and split lists; default ``$SCALARIZE_DATA/domainnet``.
        domains: the domains (the objectives), in this order, e.g. ``[real, sketch]`` or
            ``"real,sketch"``; default all six.
        resize: the side of the square images (DomainNet's sizes vary, so one is needed).
        max_per_split: at most this many images per domain and split (a fixed random subset
            drawn with ``seed``), to try things quickly; 0 loads all.
        val_fraction: the part of each domain's official train list held out for validation.
        seed: the seed of the validation split and of the subsets.
        storage: where the images live: ``auto`` (memory when they fit the memory budget, else
            the decoded cache), ``memory``, ``cache`` or ``jpeg`` (:mod:`scalarize.data.storage`).
    """
    chosen = choose_names("domains", domains, DOMAINS)
    check_int("resize", resize, 1)
    if storage not in STORAGES:
        raise ValueError(f"storage: expected one of {', '.join(STORAGES)}; got {storage!r}")
    check_int("max_per_split", max_per_split, 0)
    check_fraction("val_fraction", val_fraction)
    path = resolve_root(root, "domainnet", NEEDS)

    classes: dict[int, str] = {}
    plans = {}
    for domain in chosen:
        lists = {s: require(path / f"{domain}_{s}.txt", NEEDS) for s in ("train", "test")}
        train_files, train_labels = read_split_list(lists["train"])
        test_files, test_labels = read_split_list(lists["test"])
        for file, label in zip(train_files + test_files, np.concatenate([train_labels, test_labels]).tolist()):
            if label not in classes:
                parts = Path(file).parts
                if len(parts) >= 3:
                    classes[label] = parts[-2]
        train_idx, val_idx = carve_indices(len(train_files), val_fraction, seed)
        rows = {
            "train": (train_files, train_labels, subsample(train_idx, max_per_split, seed)),
            "val": (train_files, train_labels, subsample(val_idx, max_per_split, seed + 1)),
            "test": (test_files, test_labels, subsample(np.arange(len(test_files)), max_per_split, seed + 2)),
        }
        # strings, not Path objects: ~10x faster for DomainNet's 0.6 million files
        folder = os.fspath(path)
        paths = {s: [os.path.join(folder, files[i]) for i in index.tolist()] for s, (files, _, index) in rows.items()}
        key = {
            "root": str(path),
            "domain": domain,
            "resize": resize,
            "max_per_split": max_per_split,
            "val_fraction": val_fraction,
            "seed": seed,
            "files": files_digest([*lists.values(), *(p for s in rows for p in paths[s])]),
            "version": 2,
        }
        targets = {s: {"category": torch.as_tensor(labels[index])} for s, (_, labels, index) in rows.items()}
        plans[domain] = (key, paths, targets)

    shape = (3, resize, resize)
    images = sum(len(p) for _, paths, _ in plans.values() for p in paths.values())
    cached = all(open_decoded(f"domainnet-{d}", key, list(paths)) is not None for d, (key, paths, _) in plans.items())
    mode = choose_storage(storage, images, shape, cached=cached)
    data: dict[str, dict[str, Split | ImageSplit]] = {}
    for domain, (key, paths, targets) in plans.items():
        if mode == "jpeg":
            stores = {s: JpegImages(p, resize, shape) for s, p in paths.items()}
        else:
            stores = decoded_images(f"domainnet-{domain}", key, {s: jpeg_source(p, resize) for s, p in paths.items()})
        data[domain] = {
            s: Split(to_float_tensor(store), targets[s]) if mode == "memory" else ImageSplit(store, targets[s])
            for s, store in stores.items()
        }
    return Benchmark(
        "domainnet",
        "mdl",
        [Task("category", "multiclass", NUM_CLASSES)],
        data,
        description=f"DomainNet: one {NUM_CLASSES}-class task over the domains {', '.join(chosen)}",
        extras={"root": os.fspath(path), "classes": dict(sorted(classes.items())), "storage": mode},
    )
