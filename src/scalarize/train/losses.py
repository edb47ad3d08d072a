"""The objectives' losses of a training batch, written once for a run and for P stacked members.

MTL: each task's mean loss over the batch. MDL (Royer et al. 2023): a batch drawn from the domain
mixture is grouped by domain (``counts[d]`` samples of domain d), and each domain's loss is the
mean over its part (0 for a domain absent from the batch); the weights were the sampling ratios,
so the trained objective is the plain mean over the batch, ``Σ_d counts[d] / B · L_d``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.data.benchmark import Benchmark


def objective_losses(
    benchmark: Benchmark, outputs: dict[str, Tensor], targets: dict[str, Tensor], counts: Tensor
) -> Tensor:
    """``[T]`` losses of one batch (``counts [D]``), or ``[P, T]`` for P members' batches
    (outputs and targets ``[P, B, ...]``, ``counts [P, D]``)."""
    stacked = counts.dim() == 2
    if benchmark.setting == "mtl":
        if not stacked:  # a stack of the task losses: methods find each task's graph in it
            return torch.stack([t.loss(outputs[t.name], targets[t.name]) for t in benchmark.tasks])
        size, batch = counts.shape[0], int(counts[0].sum())
        columns = [
            t.loss(_flat(outputs[t.name]), _flat(targets[t.name]), reduction="none").view(size, batch).mean(1)
            for t in benchmark.tasks
        ]
        return torch.stack(columns, dim=1)
    task = benchmark.tasks[0]
    output, target = outputs[task.name], targets[task.name]
    if stacked:
        output, target = _flat(output), _flat(target)
    per_sample = task.loss(output, target, reduction="none")
    device = per_sample.device
    slot = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts.flatten().to(device))
    sums = per_sample.new_zeros(counts.numel()).index_add(0, slot, per_sample).view(counts.shape)
    return sums / counts.clamp(min=1).to(device=device, dtype=sums.dtype)


def batch_fractions(counts: Tensor, like: Tensor) -> Tensor:
    """MDL: the share of the batch each domain drew (``[D]``, or ``[P, D]``)."""
    counts = counts.to(like)
    return counts / counts.sum(-1, keepdim=True)


def _flat(value: Tensor) -> Tensor:
    return value.reshape(value.shape[0] * value.shape[1], *value.shape[2:])
