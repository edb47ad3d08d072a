"""Multi-layer perceptron trunk: ``depth`` hidden layers of ``round(256 * width)`` units."""

from __future__ import annotations

import math

from torch import nn

BASE_UNITS = 256


def mlp_trunk(input_shape: tuple[int, ...], width: float = 1.0, depth: int = 2) -> tuple[nn.Module, int]:
    """Returns the trunk and its output size. Each hidden layer is Linear → ReLU."""
    units = max(1, round(BASE_UNITS * width))
    layers: list[nn.Module] = [nn.Flatten()]
    size = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(size, units), nn.ReLU()]
        size = units
    return nn.Sequential(*layers), size
