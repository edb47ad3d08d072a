"""The ``parameters`` gradient space (the default): per-task gradients on the shared parameters.

The Jacobian is ``[T, n]`` over the flattened shared parameters (the trunk); across ranks, its
mean over the ranks, reduced with every head's gradients in one all-reduce. The direction is
written into the shared parameters' ``.grad``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from scalarize.methods.gradients.engine import Own, flatten_rows
from scalarize.methods.gradients.reduction import mean_over_ranks
from scalarize.methods.gradients.space import GradientSpace, Step


class ParameterSpace(GradientSpace):
    """Per-task gradients on the shared parameters."""

    name = "parameters"

    def tensors(self, step: Step, shared_params: Sequence[nn.Parameter]) -> list[Tensor]:
        return list(shared_params)

    def jacobian(self, step: Step, shared_params: Sequence[nn.Parameter]) -> tuple[Tensor, Own]:
        if not shared_params:
            raise RuntimeError("this model has no shared parameters")
        grads, task_grads = step._per_task(shared_params)
        jacobian = flatten_rows(grads, shared_params, len(task_grads))
        if step.reducer is None:
            return jacobian, task_grads
        # one all-reduce: the Jacobian and every head's gradients
        flat = [g for grads_i in task_grads for g in grads_i]
        like = [p for params in step._all_own() for p in params]
        reduced_jacobian, *reduced_flat = mean_over_ranks(step.reducer, [jacobian, *flat], [jacobian, *like])
        assert reduced_jacobian is not None
        reduced = iter(reduced_flat)
        return reduced_jacobian, [tuple(next(reduced) for _ in grads_i) for grads_i in task_grads]

    def apply(self, step: Step, shared_params: Sequence[nn.Parameter], direction: Tensor) -> None:
        offset = 0
        for param in shared_params:
            size = param.numel()
            grad = direction[offset : offset + size].view_as(param).to(param.dtype)
            param.grad = grad.clone() if param.grad is None else param.grad + grad
            offset += size
