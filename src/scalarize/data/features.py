"""How a tabular benchmark packs a row into one input tensor, so every engine (the trainer, a
stacked population, data-parallel ranks, Ray trials) handles tables as it handles images.

A row is ``[width]`` float32: the ``dense`` columns first (already normalised), then one column per
``categorical`` feature holding its id, then, for each ``sequences`` feature (multi-hot or a
history), ``length`` id columns padded with 0. Ids are integers below 2**24 (exact in float32);
id 0 is the unknown or rare value of every categorical and sequence vocabulary, and the padding of
every sequence. A model reads the layout from the benchmark's ``extras["features"]``: the
model door hands it to a builder that takes a ``features`` keyword (``models/registry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Ids above this are not exact in float32.
MAX_ID = 2**24


@dataclass(frozen=True)
class SequenceFeature:
    """A multi-hot or sequence feature: ``length`` id columns (0: padding), pooled by the model."""

    name: str
    vocabulary: int
    length: int


@dataclass(frozen=True)
class FeatureSchema:
    """The columns of a packed tabular row: see the module's docstring."""

    dense: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    vocabularies: tuple[int, ...] = ()  # ids per categorical column, 0 included
    sequences: tuple[SequenceFeature, ...] = ()

    def __post_init__(self) -> None:
        if len(self.categorical) != len(self.vocabularies):
            raise ValueError(
                f"features: {len(self.categorical)} categorical columns but {len(self.vocabularies)} vocabularies"
            )
        for size in (*self.vocabularies, *(s.vocabulary for s in self.sequences)):
            if not 1 <= size <= MAX_ID:
                raise ValueError(f"features: a vocabulary must hold 1 to {MAX_ID} ids, got {size}")

    @property
    def width(self) -> int:
        """Columns of a packed row."""
        return len(self.dense) + len(self.categorical) + sum(s.length for s in self.sequences)

    def unpack(self, rows: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``rows [..., width]`` → (dense ``[..., D]`` float, categorical ids ``[..., C]`` long,
        one ``[..., length]`` long id tensor per sequence)."""
        if rows.shape[-1] != self.width:
            raise ValueError(f"features: rows have {rows.shape[-1]} columns, the schema packs {self.width}")
        dense_end = len(self.dense)
        categorical_end = dense_end + len(self.categorical)
        dense = rows[..., :dense_end]
        ids = rows[..., dense_end:categorical_end].to(torch.long)
        sequences, start = [], categorical_end
        for sequence in self.sequences:
            sequences.append(rows[..., start : start + sequence.length].to(torch.long))
            start += sequence.length
        return dense, ids, sequences
