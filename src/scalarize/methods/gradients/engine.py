"""What a per-task gradient engine is: how the T backward passes of a step are run.

An engine turns the step's T task losses into per-task gradients on any tensors they reach
(:meth:`GradientEngine.task_gradients`) and takes T vector-Jacobian products of one output
(:meth:`GradientEngine.products`: the trunk's, from per-task gradients on the shared
representation). It knows nothing of the step's data, ranks or loss scale: the context hands it
``autograd``, ``torch.autograd.grad``'s signature with the loss scale applied
(:func:`scalarize.methods.gradients.scale.grad`), and reduces what it returns across ranks.
Every engine gives the same gradients up to floating-point rounding.

Adding an engine is one module with a :class:`GradientEngine` subclass (and its ``name``), its
line in :data:`scalarize.methods.gradients.ENGINES`, and its test; the config's
``gradient_engine`` then takes its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge

#: ``torch.autograd.grad(outputs, inputs, grad_outputs=None, **options)`` with the step's loss scale.
Autograd = Callable[..., tuple[Tensor | None, ...]]
#: Per input, ``[T, *input.shape]`` (``None`` where no task's loss reaches it).
Rows = tuple[Tensor | None, ...]
#: Per task ``i``, its gradients on its own tensors (``None`` where unused).
Own = list[tuple[Tensor | None, ...]]


def task_outputs(losses: Tensor) -> list[Tensor | GradientEdge] | None:
    """The T task losses as outputs of their own, if ``losses`` is a ``torch.stack`` of scalars.

    Returns gradient edges (which ``torch.autograd.grad`` differentiates like tensors), or
    ``None`` when ``losses`` was built another way.
    """
    node = losses.grad_fn
    if node is None or losses.dim() != 1 or node.name() != "StackBackward0":
        return None
    edges = node.next_functions
    if len(edges) != losses.numel():
        return None
    out: list[Tensor | GradientEdge] = []
    for function, index in edges:
        if function is None or "AccumulateGrad" in function.name():
            return None  # a loss without a graph of its own
        out.append(GradientEdge(function, index))
    return out


@dataclass(frozen=True)
class TaskLosses:
    """The step's T task losses as an engine differentiates them.

    Each task's backward starts from that task's own loss (``outputs[i]``, an input of the
    ``torch.stack`` that built ``values``), not from row i of the ``[T]`` vector: a row's backward
    would also send zero gradients through every other task's head. Without ``outputs`` (a
    ``[T]`` tensor built another way), the rows of ``values`` are differentiated.
    """

    values: Tensor
    outputs: Sequence[Tensor | GradientEdge] | None

    @property
    def num_tasks(self) -> int:
        return self.values.numel()

    def one(self, i: int) -> tuple[Tensor | GradientEdge, Tensor | None]:
        """Task i's loss as one output of ``torch.autograd.grad``, and its seed."""
        if self.outputs is None:
            return self.values[i], None
        return self.outputs[i], torch.ones((), dtype=self.values.dtype, device=self.values.device)

    def all(self) -> tuple[list[Tensor | GradientEdge], list[Tensor]]:
        """Every task's loss as outputs of one batched ``torch.autograd.grad`` (seed row i picks
        task i's loss)."""
        eye = torch.eye(self.num_tasks, dtype=self.values.dtype, device=self.values.device)
        if self.outputs is None:
            return [self.values.reshape(-1)], [eye]
        return list(self.outputs), list(eye.T)


class GradientEngine(ABC):
    """How per-task gradients are computed (the config's ``gradient_engine``)."""

    #: The engine's name in configs.
    name: ClassVar[str]

    def __init__(self, autograd: Autograd) -> None:
        self.autograd = autograd

    @abstractmethod
    def task_gradients(
        self,
        losses: TaskLosses,
        inputs: Sequence[Tensor],
        own: Sequence[Sequence[Tensor]] = (),
    ) -> tuple[Rows, Own]:
        """Every task's gradients on ``inputs`` (per input ``[T, *input.shape]``, ``None`` where no
        task reaches it) and task i's on its own tensors ``own[i]`` (its head), in the same
        passes. The graph is kept."""

    @abstractmethod
    def products(self, output: Tensor, inputs: Sequence[Tensor], cotangents: Tensor) -> Rows:
        """Per input ``[T, *input.shape]``: the vector-Jacobian products of ``output`` with each
        row of ``cotangents`` (``[T, *output.shape]``), ``None`` where ``output`` does not reach
        the input. The graph is kept."""

    def options(self) -> dict[str, Any]:
        """The options of every ``autograd`` call (the graph is kept; unused inputs are ``None``)."""
        return {"retain_graph": True, "allow_unused": True}


def stack_rows(per_task: Sequence[Sequence[Tensor | None]], inputs: Sequence[Tensor]) -> Rows:
    """Per input ``[T, *input.shape]`` from T tuples of per-input gradients (zeros where one
    task's is ``None``; ``None`` where every task's is)."""
    return tuple(
        None
        if all(row[k] is None for row in per_task)
        else torch.stack([torch.zeros_like(x) if row[k] is None else row[k] for row in per_task])  # type: ignore[misc]
        for k, x in enumerate(inputs)
    )


def flatten_rows(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter | Tensor], rows: int) -> Tensor:
    """``[rows, n]`` from per-parameter ``[rows, *p.shape]`` gradients (zeros where ``None``)."""
    return torch.cat(
        [(g.reshape(rows, -1) if g is not None else p.new_zeros(rows, p.numel())) for g, p in zip(grads, params)],
        dim=1,
    )
