"""Experts and gated towers, the pieces the expert-gated families share (MMoE, CGC/PLE,
DSelect-k).

Layout of the shared representation ``Z`` these families expose: a flat ``[..., width]`` vector
of named **slices** (the embedded input, expert outputs flattened expert by expert). A
:class:`GatedTower` (one task's head) reads its gate input and the expert outputs from ``Z``,
mixes them and maps the mixture through its tower. So every path from a shared parameter to a
task's output goes through ``Z``: per-task gradients on ``Z`` (``gradients: representation``,
MGDA-UB, GradNorm) see all of it, and the model is a plain
:class:`~scalarize.models.MultiTaskModel` (trunk → ``Z``, heads = gated towers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scalarize.models.embedding import mlp, mlp_size

Slice = tuple[int, int]  # [start, stop) in Z's last dimension


class Experts(nn.Module):
    """``n`` MLP experts on one input: ``[..., size]`` → ``[..., n, out]``."""

    def __init__(self, n: int, size: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.experts = nn.ModuleList(mlp(size, hidden) for _ in range(n))
        self.n, self.out = n, mlp_size(size, hidden)

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.stack([expert(inputs) for expert in self.experts], dim=-2)


def take(z: Tensor, part: Slice) -> Tensor:
    return z[..., part[0] : part[1]]


def experts_of(z: Tensor, part: Slice, out: int) -> Tensor:
    """The expert outputs held in ``part`` of ``Z`` as ``[..., n, out]``."""
    part_z = take(z, part)
    return part_z.reshape(*part_z.shape[:-1], -1, out)


def softmax_gate(size: int, n: int) -> nn.Module:
    """MMoE's gate: ``softmax(W x)`` over ``n`` experts (a linear map without bias, as the paper's
    ``g(x) = softmax(W_g x)``)."""
    return nn.Sequential(nn.Linear(size, n, bias=False), nn.Softmax(dim=-1))


def mix(weights: Tensor, experts: Tensor) -> Tensor:
    """``Σ_i weights[..., i] · experts[..., i, :]``."""
    mixture: Tensor = (weights.unsqueeze(-1) * experts).sum(-2)
    return mixture


class GatedTower(nn.Module):
    """One task's head on ``Z``: ``tower(Σ_i g(x)_i f_i)`` over the shared experts read from
    ``Z`` (and, for CGC/PLE, this task's own experts on ``x``), with ``x`` the gate input read
    from ``Z``. ``gate`` maps ``x [..., d]`` to the mixture weights ``[..., n]``."""

    def __init__(
        self,
        gate_input: Slice,
        shared: Slice,
        expert_out: int,
        gate: nn.Module,
        tower: nn.Module,
        own: Experts | None = None,
    ) -> None:
        super().__init__()
        self.gate_input, self.shared, self.expert_out = gate_input, shared, expert_out
        self.gate, self.tower, self.own = gate, tower, own

    def mixture(self, z: Tensor) -> Tensor:
        """The gated mixture of the experts, before the tower."""
        x = take(z, self.gate_input)
        experts = experts_of(z, self.shared, self.expert_out)
        if self.own is not None:
            experts = torch.cat([experts, self.own(x)], dim=-2)
        return mix(self.gate(x), experts)

    def forward(self, z: Tensor) -> Tensor:
        output: Tensor = self.tower(self.mixture(z))
        return output
