"""Per-task gradients split at the shared representation, for hard parameter sharing.

When the trainer passes ``head_inputs`` (head i reads row i of an expanded ``[T, *Z.shape]``
view of the shared representation ``Z``,
:meth:`~scalarize.models.MultiTaskModel.forward_with_head_inputs`), every loss reaches the shared
parameters only through ``Z``. **One** backward pass of ``Σ_i L_i`` through the heads then gives
every task's gradient on ``Z`` (row i of the gradient on ``head_inputs`` is task i's alone) and on
its own head (:func:`heads_backward`); an engine takes the T products ``∂Z/∂θ · ∂L_i/∂Z`` through
the trunk alone (:meth:`~scalarize.methods.gradients.engine.GradientEngine.products`). A backward
that weights the losses can catch the rows on the way instead (:func:`catch_head_gradients`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from scalarize.methods.gradients.engine import Autograd, Own


def heads_backward(
    autograd: Autograd, losses: Tensor, head_inputs: Tensor, own: Sequence[Sequence[Tensor]]
) -> tuple[Tensor, Own]:
    """One backward of ``Σ_i L_i`` through the heads only: ``[T, *Z.shape]`` per-task gradients
    on the shared representation, and each task's gradients on its own head ``own[i]``."""
    grads = autograd(
        losses.sum(), [head_inputs, *(p for params in own for p in params)], retain_graph=True, allow_unused=True
    )
    feature_grads = torch.zeros_like(head_inputs) if grads[0] is None else grads[0]
    task_grads: Own = []
    offset = 1
    for params in own:
        task_grads.append(tuple(grads[offset : offset + len(params)]))
        offset += len(params)
    return feature_grads, task_grads


def catch_head_gradients(head_inputs: Tensor, run: Callable[[], None]) -> Tensor | None:
    """The gradient on ``head_inputs`` as it goes by during ``run()`` (a backward pass), caught
    by a hook; ``None`` if the pass does not reach them."""
    caught: list[Tensor] = []
    handle = head_inputs.register_hook(caught.append)  # type: ignore[no-untyped-call]
    try:
        run()
    finally:
        handle.remove()
    return caught[0] if caught else None
