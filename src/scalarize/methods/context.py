"""What the trainer hands a method for one step.

The context holds the step's task losses (with their graph), the shared representation and the
parameter groups, and computes on demand what a method declared it needs: per-task gradients on
the shared parameters, or on the shared representation. Nothing is computed that nobody asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


class StepContext:
    """One optimisation step as seen by a :class:`~scalarize.methods.base.Method`.

    Args:
        losses: ``[T]`` task losses, attached to the graph.
        features: the shared representation (output of the trunk) the heads read, or ``None``.
        shared_params: parameters every task's loss reaches (the trunk).
        task_params: per task, the parameters only that task's loss reaches (its head).
        batch_fractions: MDL only, ``[D]`` share of the batch drawn from each domain.
        recompute_losses: returns the ``[T]`` losses of the same batch under the current
            parameters, without a graph (for methods that look at the effect of a step).
        step: global step index; epoch: epoch index.
    """

    def __init__(
        self,
        losses: Tensor,
        *,
        features: Tensor | None,
        shared_params: Sequence[nn.Parameter],
        task_params: Sequence[Sequence[nn.Parameter]],
        batch_fractions: Tensor | None = None,
        recompute_losses: Callable[[], Tensor] | None = None,
        step: int = 0,
        epoch: int = 0,
    ) -> None:
        self.losses = losses
        self.features = features
        self.shared_params = list(shared_params)
        self.task_params = [list(p) for p in task_params]
        self.batch_fractions = batch_fractions
        self._recompute_losses = recompute_losses
        self.step = step
        self.epoch = epoch
        self._task_grads: list[tuple[Tensor, ...]] | None = None
        self._jacobian: Tensor | None = None

    # -- plain backward ----------------------------------------------------------------------
    def backward(self, loss: Tensor) -> None:
        """Backpropagates one scalar into every parameter it reaches."""
        loss.backward()

    # -- per-task gradients on the shared parameters ------------------------------------------
    def shared_jacobian(self) -> Tensor:
        """``[T, n]``: row i is the gradient of loss i on the flattened shared parameters.

        Computed with one ``autograd.grad`` per task (the fastest engine measured on CPU for
        small models, see DESIGN.md); each pass also yields that task's head gradient, kept for
        :meth:`backward_task_specific`.
        """
        if self._jacobian is None:
            if not self.shared_params:
                raise RuntimeError("this model has no shared parameters")
            rows, task_grads = [], []
            num_tasks = self.losses.numel()
            for i in range(num_tasks):
                own = self.task_params[i] if i < len(self.task_params) else []
                grads = torch.autograd.grad(
                    self.losses[i],
                    self.shared_params + own,
                    retain_graph=True,
                    allow_unused=True,
                )
                shared = grads[: len(self.shared_params)]
                rows.append(_flatten(shared, self.shared_params))
                task_grads.append(grads[len(self.shared_params) :])
            self._jacobian = torch.stack(rows)
            self._task_grads = task_grads
        return self._jacobian

    def backward_task_specific(self, weights: Tensor | None = None) -> None:
        """Accumulates each task's gradient on its own parameters (optionally scaled)."""
        if self._task_grads is None:
            self.shared_jacobian()
        assert self._task_grads is not None
        for i, grads in enumerate(self._task_grads):
            scale = None if weights is None else weights[i]
            own = self.task_params[i] if i < len(self.task_params) else []  # MDL: no heads
            for param, grad in zip(own, grads):
                if grad is None:
                    continue
                grad = grad if scale is None else grad * scale
                param.grad = grad.clone() if param.grad is None else param.grad + grad

    def task_gradients(self) -> list[tuple[Tensor | None, ...]]:
        """Per task ``i``, its loss's gradient on ``task_params[i]`` (``None`` where unused).

        Computed by the same passes as :meth:`shared_jacobian` (for methods that treat the
        task-specific gradients themselves, e.g. an optimizer keeping per-task moments).
        """
        if self._task_grads is None:
            self.shared_jacobian()
        assert self._task_grads is not None
        return list(self._task_grads)

    def set_shared_gradient(self, direction: Tensor) -> None:
        """Writes a flat ``[n]`` update direction into the shared parameters' ``.grad``."""
        offset = 0
        for param in self.shared_params:
            size = param.numel()
            grad = direction[offset : offset + size].view_as(param).to(param.dtype)
            param.grad = grad.clone() if param.grad is None else param.grad + grad
            offset += size

    # -- gradients on the shared representation ---------------------------------------------
    def feature_jacobian(self) -> Tensor:
        """``[T, m]``: gradient of each loss on the (flattened) shared representation."""
        if self.features is None:
            raise RuntimeError("this model exposes no shared representation")
        rows = [
            torch.autograd.grad(self.losses[i], self.features, retain_graph=True)[0].flatten()
            for i in range(self.losses.numel())
        ]
        return torch.stack(rows)

    def recompute_losses(self) -> Tensor:
        if self._recompute_losses is None:
            raise RuntimeError("this trainer cannot recompute losses")
        with torch.no_grad():
            return self._recompute_losses()


def _flatten(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter]) -> Tensor:
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params)
        ]
    )
