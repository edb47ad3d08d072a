"""MMoE, Multi-gate Mixture-of-Experts (Ma et al., KDD 2018, "Modeling Task Relationships in
Multi-task Learning with Multi-gate Mixture-of-Experts").

The rule (paper, eq. 5-6): ``n`` expert MLPs ``f_i`` on the embedded input ``x``, and per task
``k`` a gate ``g^k(x) = softmax(W_gk x)`` (linear, no bias) and a tower:
``y_k = h^k(Σ_i g^k(x)_i f_i(x))``. Defaults (this library's, scaled by ``width``; the paper tunes
them per dataset): ``experts`` 8, ``expert`` hidden sizes (64,), ``tower`` (32,),
``embedding_dim`` 8 (``models/embedding.py``).

Representation: ``Z = [x ‖ f_1(x) ‖ … ‖ f_n(x)]``, the embedded input (what the gates read)
concatenated with the expert outputs, ``[B, d + n·expert[-1]]``. Every path from the embedding
and the experts to a task's output goes through ``Z``, so per-task gradients on ``Z`` are
complete. Shared parameters: the embedding tables and the experts; task parameters: each task's
gate and tower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, FeatureEmbedding, count, hidden_sizes, mlp, schema_for
from scalarize.models.experts import Experts, GatedTower, softmax_gate
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import register_model


class InputAndExperts(nn.Module):
    """``rows → Z = [x ‖ experts(x) flattened]`` with ``x`` the embedded rows."""

    def __init__(self, embedding: FeatureEmbedding, experts: Experts) -> None:
        super().__init__()
        self.embedding, self.experts = embedding, experts

    def forward(self, rows: Tensor) -> Tensor:
        x = self.embedding(rows)
        return torch.cat([x, self.experts(x).flatten(-2)], dim=-1)


def moe_model(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float,
    features: FeatureSchema | None,
    embedding_dim: int | str,
    experts: int,
    expert: Sequence[int],
    tower: Sequence[int],
    gate: Callable[..., nn.Module] | None = None,
    **gate_options: object,
) -> MultiTaskModel:
    """An MMoE-shaped model; ``gate(size, n, **gate_options)`` builds each task's gate (default
    MMoE's softmax gate)."""
    embedding = FeatureEmbedding(schema_for(input_shape, features), embedding_dim)
    n = count("experts", experts)
    pool = Experts(n, embedding.size, hidden_sizes("expert", expert, width))
    tower_sizes = hidden_sizes("tower", tower, width)
    d = embedding.size
    shared = (d, d + n * pool.out)

    def head(task: Task) -> GatedTower:
        g = softmax_gate(d, n) if gate is None else gate(d, n, **gate_options)
        return GatedTower((0, d), shared, pool.out, g, mlp(pool.out, tower_sizes, task.num_outputs))

    return MultiTaskModel(InputAndExperts(embedding, pool), {t.name: head(t) for t in tasks})


def mmoe(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    experts: int = 8,
    expert: Sequence[int] = (64,),
    tower: Sequence[int] = (32,),
) -> MultiTaskModel:
    """The MMoE model (see the module docstring)."""
    return moe_model(input_shape, tasks, width, features, embedding_dim, experts, expert, tower)


register_model("mmoe", mmoe)
