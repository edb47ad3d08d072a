"""Model families by the name configs use."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from scalarize.data.task import Task
from scalarize.models.bottleneck_resnet import resnet_bottleneck_trunk
from scalarize.models.mlp import mlp_trunk
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.resnet import resnet_trunk
from scalarize.models.vit import vit_trunk


class ModelError(ValueError):
    """An unknown family or a bad size (reported to users as one line)."""


def linear_trunk(input_shape: tuple[int, ...], width: float = 1.0, depth: int = 0) -> tuple[nn.Module, int]:
    """No hidden layer: the heads are the model (used with identity heads, see below)."""
    return nn.Flatten(), math.prod(input_shape)


FAMILIES: dict[str, Callable[..., tuple[nn.Module, int]]] = {
    "mlp": mlp_trunk,
    "resnet": resnet_trunk,
    "linear": linear_trunk,
    "resnet_bottleneck": resnet_bottleneck_trunk,
    "vit": vit_trunk,
}


def available_models() -> list[str]:
    return sorted(FAMILIES)


def build_model(
    family: str, input_shape: Sequence[int], tasks: Sequence[Task], width: float = 1.0, depth: int = 2
) -> MultiTaskModel:
    """A trunk of the family and one linear head per task.

    The ``linear`` family is one shared matrix ``[outputs, inputs]`` without bias and identity
    heads; all tasks must have the same output size. It makes weighted least squares exact (see
    :class:`scalarize.data.LinearProblem`).
    """
    if family not in FAMILIES:
        raise ModelError(f"model.family: unknown family {family!r}; allowed: {', '.join(available_models())}")
    if width <= 0:
        raise ModelError(f"model.width: must be > 0, got {width}")
    if depth < (0 if family == "linear" else 1):
        raise ModelError(f"model.depth: must be >= 1 for {family!r}, got {depth}")
    try:
        trunk, size = FAMILIES[family](tuple(input_shape), width=width, depth=depth)
    except ValueError as error:
        raise ModelError(f"model.family: {error}") from None
    if family == "linear":
        outputs = {t.num_outputs for t in tasks}
        if len(outputs) != 1:
            raise ModelError("model.family: 'linear' needs tasks with one common output size")
        trunk = nn.Sequential(trunk, nn.Linear(size, outputs.pop(), bias=False))
        heads: dict[str, nn.Module] = {t.name: nn.Identity() for t in tasks}
    else:
        heads = {t.name: nn.Linear(size, t.num_outputs) for t in tasks}
    return MultiTaskModel(trunk, heads)
