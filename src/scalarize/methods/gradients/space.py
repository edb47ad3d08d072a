"""Gradient spaces: where a gradient method's per-task gradients are taken, and how the direction
it aggregates from them becomes the model's ``.grad``.

A gradient-space method (:class:`~scalarize.methods.base.GradientMethod`) turns a ``[T, n]``
Jacobian into one direction ``[n]``. The space says what the ``n`` columns are:

* ``parameters`` (:mod:`.parameters`, the default): the flattened shared parameters; the
  direction is written into their ``.grad``;
* ``representation`` (:mod:`.representation`, LibMTL's ``rep_grad``): the flattened shared
  representation ``Z`` (batch × features); the direction is backpropagated through the trunk.

Adding a space is one module with a :class:`GradientSpace` subclass, its line in
:data:`SPACES`, and its test. A space reaches the step only through :class:`Step` (which
:class:`~scalarize.methods.context.StepContext` is), so it knows nothing of the engines, the loss
scale or the trainer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol

from torch import Tensor, nn

from scalarize.methods.gradients.engine import Own, Rows
from scalarize.methods.gradients.reduction import Reducer

#: The spaces' names, the default first (``scalarize.methods.gradients.SPACES`` has the classes).
GRADIENT_SPACE_NAMES = ("parameters", "representation")


class Step(Protocol):
    """What a space needs of the step."""

    features: Tensor | None
    reducer: Reducer | None

    def _per_task(self, inputs: Sequence[Tensor]) -> tuple[Rows, Own]:
        """Every task's gradients on ``inputs`` (``[T, *x.shape]`` each, this rank's) and on its own
        head, by the step's engine (through the heads' one pass when the step has one)."""
        ...

    def _all_own(self) -> list[list[nn.Parameter]]:
        """Per task, its own parameters (its head; none in MDL)."""
        ...

    def _backward(self, output: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """``output.backward(gradient)`` into ``.grad`` (true gradients; global across ranks)."""
        ...


class GradientSpace(ABC):
    """Where per-task gradients are taken for a gradient method."""

    #: The space's name (``method.options.gradients``).
    name: ClassVar[str]

    @abstractmethod
    def tensors(self, step: Step, shared_params: Sequence[nn.Parameter]) -> list[Tensor]:
        """The shared tensors the Jacobian's columns are (in order)."""

    @abstractmethod
    def jacobian(self, step: Step, shared_params: Sequence[nn.Parameter]) -> tuple[Tensor, Own]:
        """``[T, n]`` per-task gradients in this space and each task's gradients on its own head,
        as methods see them (reduced across ranks where the space allows)."""

    @abstractmethod
    def apply(self, step: Step, shared_params: Sequence[nn.Parameter], direction: Tensor) -> None:
        """Adds the update the ``[n]`` direction makes to the shared parameters' ``.grad``."""
