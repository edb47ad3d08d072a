"""fp16's loss scale in a step's backward passes (``scalarize.train.precision``).

With a loss scale ``s``, every backward pass is seeded with ``s`` (so that small gradients do not
underflow in half precision) and every gradient is divided by ``s`` as it is produced, so that
methods see true gradients and ``.grad`` holds true gradients. ``scale=None``: no scaling, the
calls are ``torch.autograd.grad`` and ``Tensor.backward`` themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge

#: What ``torch.autograd.grad`` differentiates: a tensor, a gradient edge, or a sequence of them.
Outputs = Tensor | GradientEdge | Sequence[Tensor | GradientEdge]
Seeds = Tensor | Sequence[Tensor | None] | None


def grad(
    scale: float | None,
    like: Tensor,
    outputs: Outputs,
    inputs: Sequence[Tensor],
    grad_outputs: Seeds = None,
    **options: Any,
) -> tuple[Tensor | None, ...]:
    """``torch.autograd.grad(outputs, inputs, grad_outputs, **options)`` seeded with ``scale`` and
    unscaled on the way out; ``like`` (the losses) gives the dtype and device of the seed of a
    gradient edge (which has no tensor to take them from)."""
    if scale is None:
        grads: tuple[Tensor | None, ...] = torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, **options)  # type: ignore[arg-type]
        return grads
    # a GradientEdge is a named tuple: one output, not a sequence of them
    single = not isinstance(outputs, (list, tuple)) or isinstance(outputs, GradientEdge)
    listed: list[Tensor | GradientEdge] = [outputs] if single else list(outputs)  # type: ignore[list-item, arg-type]
    if grad_outputs is None:
        given: list[Tensor | None] = [torch.ones_like(o) if isinstance(o, Tensor) else None for o in listed]
    elif not isinstance(grad_outputs, (list, tuple)):
        given = [grad_outputs]  # type: ignore[list-item]
    else:
        given = list(grad_outputs)
    seeds: list[Tensor | None] = [None if g is None else g * scale for g in given]
    if any(g is None for g in seeds):  # gradient edges: seed with the scale itself
        seeds = [torch.full((), scale, dtype=like.dtype, device=like.device) if g is None else g for g in seeds]
    raw: tuple[Tensor | None, ...] = torch.autograd.grad(listed, inputs, grad_outputs=seeds, **options)  # type: ignore[arg-type]
    return tuple(None if g is None else g / scale for g in raw)


def backward(
    scale: float | None,
    like: Tensor,
    output: Tensor,
    params: Sequence[nn.Parameter],
    gradient: Tensor | None = None,
    retain_graph: bool = False,
) -> None:
    """``output.backward(gradient)`` into ``.grad``; with a loss scale, of the true gradients of
    ``params`` (those that require a gradient; the others are left alone)."""
    if scale is None:
        output.backward(gradient, retain_graph=retain_graph)  # type: ignore[no-untyped-call]
        return
    trainable = [p for p in params if p.requires_grad]
    grads = grad(
        scale,
        like,
        [output],
        trainable,
        None if gradient is None else [gradient],
        retain_graph=retain_graph,
        allow_unused=True,
    )
    for param, value in zip(trainable, grads):
        if value is not None:
            param.grad = value if param.grad is None else param.grad + value


def unscale(scale: float | None, tensor: Tensor) -> Tensor:
    """A gradient caught by a hook during a scaled backward, as a true gradient."""
    return tensor if scale is None else tensor / scale
