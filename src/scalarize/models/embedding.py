"""The shared front of the recommender families: a packed tabular row (``data/features.py``) to
one dense vector.

Each categorical column gets its own embedding table (``vocabulary`` rows, id 0 the unknown or
rare value, trained like any other); each sequence feature gets its own table and is
**mean-pooled** over its non-padding ids (id 0 is padding there and is excluded; an all-padding
row pools to zeros); the pooled vectors and the categorical embeddings are concatenated after
the dense columns. Output: ``[..., dense + dim·(categorical + sequences)]``.

``embedding_dim``: an integer (default :data:`DEFAULT_DIM` = 8, for every table) or ``"auto"``:
``round(6·vocabulary^0.25)`` per table (the rule of thumb of TensorFlow's feature-column guide),
at least 1. Without a schema every column is dense (the row passes through unchanged).

Plain tensor operations (gather, mask, sum): no Python control flow on values and no in-place
operation, so the front stacks under ``torch.func.vmap``/``functional_call``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scalarize.data.features import FeatureSchema
from scalarize.models.registry import ModelError

DEFAULT_DIM = 8


def _error(message: str) -> ModelError:
    return ModelError(message)


def table_dim(vocabulary: int, embedding_dim: int | str) -> int:
    """One table's width: ``embedding_dim``, or ``round(6·vocabulary^0.25)`` for ``"auto"``."""
    if embedding_dim == "auto":
        return max(1, int(round(6 * float(vocabulary) ** 0.25)))
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise _error(f"model.options.embedding_dim: an integer >= 1 or 'auto', got {embedding_dim!r}")
    return embedding_dim


def schema_for(input_shape: Sequence[int], features: FeatureSchema | None) -> FeatureSchema:
    """The benchmark's schema, checked against its rows; every column dense without one."""
    if len(input_shape) != 1:
        raise _error(f"model: a recommender family reads flat rows [width], got input shape {tuple(input_shape)}")
    if features is None:
        return FeatureSchema(dense=tuple(f"x{i}" for i in range(input_shape[0])))
    if not isinstance(features, FeatureSchema):
        raise _error(f"model: features must be a FeatureSchema, got {type(features).__name__}")
    if features.width != input_shape[0]:
        raise _error(f"model: the rows have {input_shape[0]} columns, the feature schema packs {features.width}")
    return features


class FeatureEmbedding(nn.Module):
    """Dense columns ‖ one embedding per categorical column ‖ one mean-pooled embedding per
    sequence feature (see the module docstring); :attr:`size` is the output width."""

    def __init__(self, schema: FeatureSchema, embedding_dim: int | str = DEFAULT_DIM) -> None:
        super().__init__()
        self.schema = schema
        self.categorical = nn.ModuleList(nn.Embedding(v, table_dim(v, embedding_dim)) for v in schema.vocabularies)
        self.sequences = nn.ModuleList(
            nn.Embedding(s.vocabulary, table_dim(s.vocabulary, embedding_dim)) for s in schema.sequences
        )
        tables = [*self.categorical, *self.sequences]
        self.size = len(schema.dense) + sum(t.embedding_dim for t in tables)

    def forward(self, rows: Tensor) -> Tensor:
        dense, ids, sequences = self.schema.unpack(rows)
        parts = [dense.to(rows.dtype)]
        parts += [table(ids[..., i]) for i, table in enumerate(self.categorical)]
        parts += [mean_pool(table(seq), seq) for table, seq in zip(self.sequences, sequences, strict=True)]
        return torch.cat(parts, dim=-1)


def mean_pool(vectors: Tensor, ids: Tensor) -> Tensor:
    """``vectors [..., L, d]`` averaged over the positions whose id is not 0 (zeros if none)."""
    mask = (ids != 0).to(vectors.dtype).unsqueeze(-1)
    return (vectors * mask).sum(-2) / mask.sum(-2).clamp(min=1.0)


def mlp(size: int, hidden: Sequence[int], out: int | None = None) -> nn.Sequential:
    """``Linear → ReLU`` per hidden size, then a plain ``Linear`` to ``out`` when given."""
    layers: list[nn.Module] = []
    for units in hidden:
        layers += [nn.Linear(size, units), nn.ReLU()]
        size = units
    if out is not None:
        layers.append(nn.Linear(size, out))
    return nn.Sequential(*layers)


def mlp_size(size: int, hidden: Sequence[int]) -> int:
    """The output width of :func:`mlp` without ``out``."""
    return hidden[-1] if hidden else size


def hidden_sizes(name: str, value: Sequence[int] | int, width: float) -> tuple[int, ...]:
    """``value`` (an int or a list of ints >= 1) scaled by ``width`` (rounded, at least 1)."""
    sizes = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
        raise _error(f"model.options.{name}: a list of integers >= 1, got {value!r}")
    return tuple(max(1, round(v * width)) for v in sizes)


def count(name: str, value: int, minimum: int = 1) -> int:
    """An integer option ``>= minimum``, or a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(f"model.options.{name}: an integer >= {minimum}, got {value!r}")
    return value
