"""Mixed precision: autocast for the forward pass, and a dynamic loss scale for fp16.

``precision: fp32 | bf16 | fp16``:

* ``bf16``: the forward pass (and the losses) run under ``torch.autocast`` in bfloat16; its range
  is float32's, so no loss scale is needed. Parameters, gradients and optimizer state stay float32.
* ``fp16``: the same in float16, whose range is small: small gradients underflow. The step's
  backward passes are seeded with the loss scale ``s`` and every gradient is divided by ``s`` as
  it is produced (:class:`~scalarize.methods.StepContext` with ``loss_scale``), so a method's
  rule always sees true gradients (per-task Jacobians included: MGDA, Nash-MTL... are not
  homogeneous in the gradients' scale, and unscaling the final ``.grad`` would be wrong for them).
  A step with a non-finite gradient is skipped, as in fp32, and halves ``s``; 2000 finite steps in
  a row double it (``torch.amp.GradScaler``'s rule, with its defaults).
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar, overload

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

T = TypeVar("T")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's autocast context for ``precision`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


class LossScale:
    """The dynamic loss scale of fp16 training (see the module docstring); a no-op otherwise."""

    def __init__(self, enabled: bool, initial: float = 2.0**16, growth_interval: int = 2000) -> None:
        self.enabled = enabled
        self.scale = initial if enabled else 1.0
        self.growth_interval = growth_interval
        self.good_steps = 0

    @property
    def value(self) -> float | None:
        """The scale to seed backward passes with, or ``None`` when not scaling."""
        return self.scale if self.enabled else None

    def update(self, finite: bool) -> None:
        if not self.enabled:
            return
        if not finite:
            self.scale /= 2.0
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale *= 2.0
            self.good_steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.good_steps = state["scale"], state["good_steps"]


@overload
def to_channels_last(value: torch.Tensor) -> torch.Tensor: ...


@overload
def to_channels_last(value: T) -> T: ...


def to_channels_last(value: object) -> object:
    """4-D image batches in channels-last memory format (other inputs as they are)."""
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value
