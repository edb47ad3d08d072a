"""AITM, the Adaptive Information Transfer Multi-task framework (Xi et al., KDD 2021, "Modeling
the Sequential Dependence among Audience Multi-step Conversions with Multi-task Learning in
Targeted Display Advertising").

The rule (paper section 3; the official code, github.com/xidongbo/AITM): tasks in the order of
the conversion funnel (the benchmark's task order, e.g. click → purchase). Each task ``t`` has a
tower ``q_t = tower_t(x)`` on the shared embedding ``x``. The first task's representation is
``z_1 = q_1``; for ``t ≥ 2`` an **AIT module** mixes the information transferred from the task
before, ``p_{t-1} = info_{t-1}(z_{t-1})`` (``Linear → ReLU``), with ``q_t`` by attention:
``z_t = Σ_{u ∈ {p_{t-1}, q_t}} w_u h_1(u)``, ``w_u = softmax_u(⟨h_2(u), h_3(u)⟩ / √d)``, with
``h_1, h_2, h_3`` linear maps without bias. Task ``t``'s logit is ``Linear(z_t)`` (the binary
kind applies the sigmoid). Defaults from the official code: ``tower`` (128, 64, 32) (scaled by
``width``), the attention dimension ``d`` = the tower's last size; its dropout (0.1, 0.3, 0.3) is
left out (a stacked population then needs no per-member randomness); ``embedding_dim`` 8 is this
library's (the code uses 5).

Left out: the **behavioural expectation calibrator**, the paper's extra loss
``α Σ_t max(ŷ_t - ŷ_{t-1}, 0)`` (``α`` 0.6 in the official code) that penalises a later step
predicted likelier than the one before. It couples two tasks' outputs, while scalarize's loss
contract is one loss per task from that task's output and target, which every method and weight
sweep weighs; a cross-task term would need a model-level loss outside the weighted sum, which
the run core does not have.

Representation: ``Z = [z_1 ‖ … ‖ z_T]``, what the logits read. Shared parameters: the embedding,
every tower, info and AIT module (task ``t``'s loss reaches the towers of tasks ``1…t``, so
those of later tasks are reached by fewer tasks: their rows of earlier tasks' Jacobians are
zero). Task parameters: each task's output layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, FeatureEmbedding, hidden_sizes, mlp, schema_for
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import ModelError, register_model


class AIT(nn.Module):
    """The AIT module: attention over ``(p, q)`` (see the module docstring)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.value, self.query, self.key = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.scale = 1 / math.sqrt(dim)

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        u = torch.stack([p, q], dim=-2)  # [..., 2, d]
        w = ((self.query(u) * self.key(u)).sum(-1) * self.scale).softmax(-1)
        mixture: Tensor = (w.unsqueeze(-1) * self.value(u)).sum(-2)
        return mixture


class Funnel(nn.Module):
    """``rows → Z = [z_1 ‖ … ‖ z_T]``: the embedding, the towers, the info and AIT modules."""

    def __init__(self, embedding: FeatureEmbedding, tasks: int, tower: Sequence[int]) -> None:
        super().__init__()
        dim = tower[-1]
        self.embedding = embedding
        self.towers = nn.ModuleList(mlp(embedding.size, tower) for _ in range(tasks))
        self.infos = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.ReLU()) for _ in range(tasks - 1))
        self.aits = nn.ModuleList(AIT(dim) for _ in range(tasks - 1))
        self.dim = dim

    def forward(self, rows: Tensor) -> Tensor:
        x = self.embedding(rows)
        z = [self.towers[0](x)]
        for tower, info, ait in zip(self.towers[1:], self.infos, self.aits, strict=True):
            z.append(ait(info(z[-1]), tower(x)))
        return torch.cat(z, dim=-1)


class Slice(nn.Module):
    """Task ``index``'s logit: ``Linear(z_index)`` read from ``Z``."""

    def __init__(self, index: int, dim: int, outputs: int) -> None:
        super().__init__()
        self.start, self.stop = index * dim, (index + 1) * dim
        self.out = nn.Linear(dim, outputs)

    def forward(self, z: Tensor) -> Tensor:
        logit: Tensor = self.out(z[..., self.start : self.stop])
        return logit


def aitm(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    tower: Sequence[int] = (128, 64, 32),
) -> MultiTaskModel:
    """The AITM model, tasks in funnel order (see the module docstring)."""
    if len(tasks) < 2:
        raise ModelError(f"model: aitm needs at least two tasks in funnel order, got {len(tasks)}")
    embedding = FeatureEmbedding(schema_for(input_shape, features), embedding_dim)
    trunk = Funnel(embedding, len(tasks), hidden_sizes("tower", tower, width))
    return MultiTaskModel(trunk, {t.name: Slice(i, trunk.dim, t.num_outputs) for i, t in enumerate(tasks)})


register_model("aitm", aitm)
