"""A model conditioned on a preference vector (COSMOS, Ruchte & Grabocka 2021).

:class:`PreferenceConditioned` appends the current preference ``r`` (``K`` values on the simplex)
to every input: as ``K`` constant channels of an image batch ``[B, C, H, W]``, or as ``K`` more
features of a flat batch ``[B, D]``. The wrapped model is built for the larger input
(:func:`conditioned_shape`); everything else (representation, heads, parameter groups) is its.
Set the preference with :meth:`PreferenceConditioned.set_preference` before a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def conditioned_shape(input_shape: Sequence[int], num_objectives: int, as_channels: bool = True) -> tuple[int, ...]:
    """The input shape of the wrapped model: ``K`` more channels (images, ``as_channels``) or
    features (the flattened input)."""
    shape = tuple(input_shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"a preference-conditioned model needs [D] or [C, H, W] inputs, got {list(shape)}")
    if len(shape) == 3 and as_channels:
        return (shape[0] + num_objectives, *shape[1:])
    return (math.prod(shape) + num_objectives,)


def starts_dense(model: nn.Module) -> bool:
    """Whether the model's first layer flattens or is linear (then the preference is features)."""
    for module in model.modules():
        if not list(module.children()):
            return isinstance(module, (nn.Flatten, nn.Linear))
    return True


class PreferenceConditioned(nn.Module):
    """``inner`` fed with ``[inputs, preference]`` (see the module docstring)."""

    def __init__(self, inner: nn.Module, num_objectives: int, as_channels: bool = True) -> None:
        super().__init__()
        self.inner = inner
        self.as_channels = as_channels
        self.register_buffer("preference", torch.full((num_objectives,), 1.0 / num_objectives), persistent=False)

    def set_preference(self, preference: Sequence[float] | Tensor) -> None:
        value = torch.as_tensor(preference, dtype=self.preference.dtype, device=self.preference.device)
        if value.shape != self.preference.shape:
            raise ValueError(f"preference: expected {self.preference.numel()} values, got {value.numel()}")
        self.preference.copy_(value / value.sum())

    def condition(self, inputs: Tensor) -> Tensor:
        batch, k = inputs.shape[0], self.preference.numel()
        preference = self.preference.to(inputs.dtype)
        if inputs.dim() == 4 and self.as_channels:
            return torch.cat([inputs, preference.view(1, k, 1, 1).expand(batch, k, *inputs.shape[2:])], dim=1)
        return torch.cat([inputs.flatten(1), preference.expand(batch, k)], dim=1)

    def forward(self, inputs: Tensor):
        return self.inner(self.condition(inputs))

    def forward_with_head_inputs(self, inputs: Tensor):
        return self.inner.forward_with_head_inputs(self.condition(inputs))

    @property
    def heads(self):
        return getattr(self.inner, "heads", None)

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.inner.shared_parameters()

    def task_parameters(self) -> list[list[nn.Parameter]]:
        return self.inner.task_parameters()
