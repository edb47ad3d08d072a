"""A sampler's draw and the batch read from it.

A sampler (:mod:`scalarize.data.sampling`) *draws* a batch: which rows of which domain, and how
each sample is augmented (:class:`Draw`). Reading it gives the :class:`Batch` a step trains on:
in the run's process (:func:`read_draws`), or ahead of use by loader workers
(:mod:`scalarize.data.streaming`), which check that what they read is the draw the run's
sampler then makes. Both build on this module, so that neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from scalarize.data.augment import Augmentation
from scalarize.data.benchmark import AnySplit


@dataclass
class Batch:
    inputs: Tensor
    targets: dict[str, Tensor]
    counts: Tensor  # [D] samples per domain, in domain order (D = 1 in MTL)


@dataclass
class Draw:
    """One batch as a sampler drew it: ``groups`` of (domain position, rows) in batch order,
    ``counts [D]``, and each sample's augmentation ``[B, 3]`` (or ``None``)."""

    groups: list[tuple[int, Tensor]]
    counts: Tensor
    augment: Tensor | None = None

    def same_as(self, other: Draw) -> bool:
        if len(self.groups) != len(other.groups) or not torch.equal(self.counts, other.counts):
            return False
        if any(d != e or not torch.equal(r, s) for (d, r), (e, s) in zip(self.groups, other.groups)):
            return False
        if (self.augment is None) != (other.augment is None):
            return False
        return self.augment is None or torch.equal(self.augment, other.augment)


def read_draws(
    splits: Sequence[AnySplit], draws: Sequence[Draw], augmentation: Augmentation | None, stacked: bool = False
) -> Batch:
    """The batch of ``draws`` read from ``splits`` in this process, on the splits' device.

    One draw (``stacked=False``): inputs ``[B, ...]``, counts ``[D]``; P draws of P members
    (``stacked=True``): inputs ``[P, B, ...]``, counts ``[P, D]``. Each draw's groups are read
    in order and concatenated (MDL: grouped by domain), then augmented as the draw says.
    """
    if stacked and len(splits) == 1 and all(len(d.groups) == 1 for d in draws):
        index = torch.stack([d.groups[0][1] for d in draws])  # one gather for P members, not P
        inputs, targets = splits[0].batch(index)
    else:
        parts = [_read_one(splits, draw) for draw in draws]
        if stacked:
            inputs = torch.stack([p[0] for p in parts])
            targets = {k: torch.stack([p[1][k] for p in parts]) for k in parts[0][1]}
        else:
            inputs, targets = parts[0]
    if augmentation is not None:
        inputs = augmentation.apply(inputs, torch.cat([d.augment for d in draws]))
    counts = torch.stack([d.counts for d in draws]) if stacked else draws[0].counts
    return Batch(inputs, targets, counts)


def _read_one(splits: Sequence[AnySplit], draw: Draw):
    if len(splits) == 1:  # MTL: one split, as Split.batch gives it
        return splits[0].batch(draw.groups[0][1])
    inputs, targets = [], {}
    for domain, rows in draw.groups:
        domain_inputs, domain_targets = splits[domain].batch(rows)
        inputs.append(domain_inputs)
        for key, value in domain_targets.items():
            targets.setdefault(key, []).append(value)
    return torch.cat(inputs), {k: torch.cat(v) for k, v in targets.items()}
