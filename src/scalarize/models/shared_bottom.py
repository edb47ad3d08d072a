"""Shared-bottom (Caruana 1997; the baseline of Ma et al., KDD 2018, MMoE): the embedding front,
one bottom MLP shared by every task, one tower MLP per task.

``y_k = tower_k(bottom(embed(x)))``. Defaults (this library's, scaled by ``width``):
``bottom`` (128, 64), ``tower`` (32,), ``embedding_dim`` 8 (``models/embedding.py``).

Representation: the bottom's output ``[B, bottom[-1]]``. Shared parameters: the embedding tables
and the bottom (every task's loss reaches them); task parameters: each task's tower and logit.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, FeatureEmbedding, hidden_sizes, mlp, mlp_size, schema_for
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import register_model


def shared_bottom(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    bottom: Sequence[int] = (128, 64),
    tower: Sequence[int] = (32,),
) -> MultiTaskModel:
    """The shared-bottom model (see the module docstring)."""
    embedding = FeatureEmbedding(schema_for(input_shape, features), embedding_dim)
    bottom_sizes = hidden_sizes("bottom", bottom, width)
    tower_sizes = hidden_sizes("tower", tower, width)
    trunk = nn.Sequential(embedding, mlp(embedding.size, bottom_sizes))
    size = mlp_size(embedding.size, bottom_sizes)
    return MultiTaskModel(trunk, {t.name: mlp(size, tower_sizes, t.num_outputs) for t in tasks})


register_model("shared_bottom", shared_bottom)
