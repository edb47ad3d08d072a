"""The ``representation`` gradient space: per-task gradients on the shared representation, for
every gradient method (LibMTL's ``rep_grad``; ``method.options.gradients: representation``).

The Jacobian is ``[T, m]``: row i is task i's gradient on the shared representation ``Z`` the
heads read, flattened over the batch (``m`` = batch size × features), instead of on the trunk's
``n`` parameters. The method aggregates it into a direction ``d_Z`` on ``Z``, and one backward of
``d_Z`` through the trunk gives the trunk's update ``(∂Z/∂θ)ᵀ d_Z``. The heads get their own
tasks' gradients, as in the parameter space.

What it changes: the T per-task passes stop at ``Z`` (with the trainer's ``head_inputs``, one
pass through the heads gives every row), so no ``[T, n]`` Jacobian of the trunk is formed,
however many parameters it has (embedding tables); the trunk is backpropagated once. The method
solves its problem on ``Z``'s gradients: for a linear trunk ``Z = X Wᵀ`` the update is exactly the
method's on those gradients mapped through the trunk, not the method's on the parameters' (the
two agree when the method is linear in the Jacobian, as a fixed weighting is). ``m`` grows with
the batch; the method's state then follows the samples, not the parameters, so methods that keep
per-column state across steps, or that draw other batches, do not offer this space.

Across ranks the rows are this rank's samples, which a method's aggregation would need all of:
not offered in data-parallel training.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from scalarize.methods.gradients.engine import Own
from scalarize.methods.gradients.space import GradientSpace, Step


class RepresentationSpace(GradientSpace):
    """Per-task gradients on the shared representation, the direction backpropagated through the trunk."""

    name = "representation"

    def _features(self, step: Step) -> Tensor:
        if step.features is None:
            raise RuntimeError("gradients on the representation: this model exposes no shared representation")
        if step.reducer is not None:
            raise RuntimeError(
                "gradients on the representation are not offered in data-parallel training "
                "(each rank holds only its samples' rows)"
            )
        return step.features

    def tensors(self, step: Step, shared_params: Sequence[nn.Parameter]) -> list[Tensor]:
        return [self._features(step)]

    def jacobian(self, step: Step, shared_params: Sequence[nn.Parameter]) -> tuple[Tensor, Own]:
        features = self._features(step)
        (grads,), task_grads = step._per_task([features])
        if grads is None:
            grads = features.new_zeros(len(task_grads), *features.shape)
        return grads.flatten(1), task_grads

    def apply(self, step: Step, shared_params: Sequence[nn.Parameter], direction: Tensor) -> None:
        features = self._features(step)
        step._backward(features, direction.view_as(features).to(features.dtype), retain_graph=True)
