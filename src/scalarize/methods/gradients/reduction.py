"""The step's reductions across ranks (data-parallel training, ``scalarize.train.distributed``).

Every function takes the step's :class:`Reducer`, or ``None`` for one process, where it is the
identity: the callers (:class:`~scalarize.methods.context.StepContext`) write one code path. The
rule (the context's module docstring has it in full): each rank's losses are scaled so that their
**mean over the ranks is the global batch's loss**; quantities on parameters are means over the
ranks, sums of per-sample quantities run over the global batch, and per-sample results stay
sharded (this rank's rows of the global batch's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor, nn


class Reducer(Protocol):
    """Sums over the ranks of data-parallel training (``scalarize.train.distributed``)."""

    world: int

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over the ranks (a new tensor; ``tensor`` is left alone)."""
        ...


def active(reducer: Reducer | None) -> Reducer | None:
    """``reducer`` when there are several ranks, else ``None`` (one process: nothing to reduce)."""
    return reducer if reducer is not None and reducer.world > 1 else None


def mean_over_ranks(reducer: Reducer, values: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor | None]:
    """The mean over the ranks of each of ``values`` (``None``: zeros shaped like ``like[k]``),
    in one reduction per device and dtype; ``None`` where no rank had a value."""
    out: list[Tensor | None] = [None] * len(values)
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for k, (value, ref) in enumerate(zip(values, like)):
        source = ref if value is None else value
        groups.setdefault((source.device, source.dtype), []).append(k)
    for (device, dtype), members in groups.items():
        parts = []
        for k in members:
            value = values[k]
            parts.append(
                like[k].new_zeros(like[k].numel(), dtype=dtype, device=device)
                if value is None
                else value.detach().reshape(-1)
            )
        present = torch.tensor([values[k] is not None for k in members], dtype=dtype, device=device)
        total = reducer.sum(torch.cat([*parts, present]))
        offset = 0
        for j, k in enumerate(members):
            size = parts[j].numel()
            if total[total.numel() - len(members) + j] > 0:
                value = values[k]
                shape = like[k].shape if value is None else value.shape
                out[k] = (total[offset : offset + size] / reducer.world).view(shape)
            offset += size
    return out


def mean(reducer: Reducer | None, values: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor | None]:
    """:func:`mean_over_ranks`, or ``values`` as they are for one process."""
    return list(values) if reducer is None else mean_over_ranks(reducer, values, like)


def global_losses(reducer: Reducer | None, local: Tensor) -> Tensor:
    """The global batch's losses (the mean of the ranks' values) with this rank's graph, so that
    a backward from any function of them sends this rank's share of the gradient."""
    if reducer is None:
        return local
    value = reducer.sum(local.detach()) / reducer.world
    return value + (local - local.detach())


def global_values(reducer: Reducer | None, local: Tensor) -> Tensor:
    """The mean over the ranks of values without a graph (e.g. recomputed losses)."""
    return local if reducer is None else reducer.sum(local.detach()) / reducer.world


def parameter_gradients(reducer: Reducer | None, params: Sequence[nn.Parameter]) -> None:
    """Every parameter's ``.grad`` becomes its mean over the ranks (what DDP's all-reduce does),
    after this rank's backward added its share."""
    if reducer is None:
        return
    trainable = [p for p in params if p.requires_grad]
    for param, grad in zip(trainable, mean_over_ranks(reducer, [p.grad for p in trainable], trainable)):
        param.grad = None if grad is None else grad.to(param.dtype)


def global_rows(reducer: Reducer | None, per_sample: Tensor) -> Tensor:
    """This rank's rows of the global batch's gradient on a per-sample tensor, from this rank's
    gradient (whose losses are scaled by the number of ranks)."""
    return per_sample if reducer is None else per_sample / reducer.world


def total(reducer: Reducer | None, tensor: Tensor) -> Tensor:
    """The sum over the ranks (the global batch's, for a sum over samples)."""
    return tensor if reducer is None else reducer.sum(tensor)
