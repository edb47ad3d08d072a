"""Batch samplers with explicit, checkpointable state.

* :class:`EpochSampler` (MTL): one shuffled pass over the training split per epoch.
* :class:`MixtureSampler` (MDL, Royer et al. 2023): every batch is drawn from the domains with
  probabilities equal to the weights (resampling). Each domain cycles through its own shuffled
  order, so a small domain is revisited more often when its weight exceeds its size share. The
  samples of a batch are grouped by domain, and ``counts[d]`` says how many came from domain d.

A sampler *draws* a batch (:meth:`next_draw`: which rows of which domain, and, with an
:class:`~scalarize.data.augment.Augmentation`, how each sample is cropped and flipped) and
*reads* it (:meth:`next_batch` reads the draw from the splits in this process). Loader workers read
draws ahead of use (:mod:`scalarize.data.streaming`) without touching the sampler's state.

Both own a ``torch.Generator`` (and one more for augmentation) whose state, with their positions,
is in ``state_dict``: a run resumed from a checkpoint draws exactly the batches an uninterrupted
run would have drawn.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from scalarize.data.augment import Augmentation
from scalarize.data.benchmark import AnySplit
from scalarize.data.draws import Batch, Draw, read_draws
from scalarize.data.streaming import StreamingSampler, streams

#: Also importable from here (the samplers' draws and batches): ``Batch``, ``Draw``, ``read_draws``.
__all__ = ["Batch", "Draw", "EpochSampler", "MixtureSampler", "augmentation_seed", "build_sampler", "read_draws"]


def augmentation_seed(seed: int) -> int:
    """The seed of a sampler's augmentation generator, derived from its own seed (so that turning
    augmentation on or off does not change which samples are drawn)."""
    return int(np.random.SeedSequence([seed, 0xA06]).generate_state(1, np.uint64)[0] >> 1)


class _Sampler:
    splits: list[AnySplit]
    generator: torch.Generator
    augmentation: Augmentation | None
    augment_generator: torch.Generator | None

    def _setup_augmentation(self, augment: Augmentation | None, seed: int) -> None:
        self.augmentation = augment if augment is not None and augment.active else None
        self.augment_generator = (
            torch.Generator().manual_seed(augmentation_seed(seed)) if self.augmentation is not None else None
        )

    def _augment(self, count: int) -> Tensor | None:
        if self.augmentation is None:
            return None
        return self.augmentation.draw(count, self.augment_generator)

    def next_draw(self) -> Draw:
        raise NotImplementedError

    def next_batch(self) -> Batch:
        """The next batch, read in this process and on the splits' device."""
        return read_draws(self.splits, [self.next_draw()], self.augmentation)

    def epoch(self) -> Iterator[Batch]:
        for _ in range(self.steps_per_epoch):
            yield self.next_batch()

    def fork(self):
        """A sampler over the same splits in the same state, which draws the same batches from
        here on without touching this one (the loader's look-ahead)."""
        twin = copy.copy(self)
        twin.generator = _copy_generator(self.generator)
        if self.augment_generator is not None:
            twin.augment_generator = _copy_generator(self.augment_generator)
        return twin

    def _augment_state(self, state: dict) -> dict:
        if self.augment_generator is not None:
            state["augment_generator"] = self.augment_generator.get_state()
        return state

    def _load_augment_state(self, state: dict) -> None:
        if self.augment_generator is not None and "augment_generator" in state:
            self.augment_generator.set_state(state["augment_generator"])

    @property
    def steps_per_epoch(self) -> int:
        raise NotImplementedError


def _copy_generator(generator: torch.Generator) -> torch.Generator:
    twin = torch.Generator()
    twin.set_state(generator.get_state())
    return twin


class EpochSampler(_Sampler):
    """Shuffled mini-batches over one split: each pass visits every sample once.

    ``steps_per_epoch = ceil(N / batch_size)``; the last batch of a pass may be smaller. The
    position inside the pass is part of the state, so a run can stop and resume anywhere.
    """

    def __init__(self, split: AnySplit, batch_size: int, seed: int, augment: Augmentation | None = None) -> None:
        self.split = split
        self.splits = [split]
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(split), generator=self.generator)
        self.position = 0
        self._count = torch.ones(1, dtype=torch.long)
        self._setup_augmentation(augment, seed)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def set_weights(self, weights: Tensor | None) -> None:
        """One domain: nothing to mix."""

    def next_index(self) -> Tensor:
        """The indices of the next batch (on the CPU)."""
        if self.position >= len(self.order):
            self.order = torch.randperm(len(self.split), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += len(index)
        return index

    def next_draw(self) -> Draw:
        index = self.next_index()
        return Draw([(0, index)], self._count * len(index), self._augment(len(index)))

    def state_dict(self) -> dict:
        return self._augment_state(
            {"generator": self.generator.get_state(), "order": self.order.clone(), "position": self.position}
        )

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self._load_augment_state(state)


class MixtureSampler(_Sampler):
    """Batches drawn from several domains with given probabilities (MDL resampling).

    An epoch is ``ceil(total_train_size / batch_size)`` batches, whatever the mixture.
    """

    def __init__(
        self, splits: Sequence[AnySplit], batch_size: int, seed: int, augment: Augmentation | None = None
    ) -> None:
        self.splits = list(splits)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.orders = [torch.randperm(len(s), generator=self.generator) for s in self.splits]
        self.positions = [0] * len(self.splits)
        self.weights = torch.full((len(self.splits),), 1.0 / len(self.splits), dtype=torch.float64)
        self._setup_augmentation(augment, seed)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(sum(len(s) for s in self.splits) / self.batch_size)

    def set_weights(self, weights: Tensor | None) -> None:
        if weights is None:
            weights = torch.ones(len(self.splits))
        weights = weights.detach().to("cpu", torch.float64)
        self.weights = weights / weights.sum()

    def _take(self, domain: int, count: int) -> Tensor:
        taken = []
        while count > 0:
            order, position = self.orders[domain], self.positions[domain]
            chunk = order[position : position + count]
            taken.append(chunk)
            count -= len(chunk)
            self.positions[domain] = position + len(chunk)
            if self.positions[domain] == len(order):
                self.orders[domain] = torch.randperm(len(order), generator=self.generator)
                self.positions[domain] = 0
        return torch.cat(taken)

    def next_draw(self) -> Draw:
        draws = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        counts = torch.bincount(draws, minlength=len(self.splits))
        groups = [(domain, self._take(domain, count)) for domain, count in enumerate(counts.tolist()) if count]
        return Draw(groups, counts, self._augment(self.batch_size))

    def fork(self) -> MixtureSampler:
        twin = super().fork()
        twin.orders, twin.positions = list(self.orders), list(self.positions)
        return twin

    def state_dict(self) -> dict:
        return self._augment_state(
            {
                "generator": self.generator.get_state(),
                "orders": [o.clone() for o in self.orders],
                "positions": list(self.positions),
                "weights": self.weights.clone(),
            }
        )

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.orders = [o.clone() for o in state["orders"]]
        self.positions = list(state["positions"])
        self.weights = state["weights"].clone()
        self._load_augment_state(state)


def build_sampler(benchmark, batch_size: int, seed: int, augment: Augmentation | None = None, *, stream: bool = True):
    """The training sampler of a run: epochs over the one training split (MTL), or the domain
    mixture (MDL, the weights are sampling ratios).

    When the training splits are read from storage (images in the decoded cache or in JPEG
    files, or a Dataset) and have loader workers, the sampler comes wrapped in a
    :class:`~scalarize.data.streaming.StreamingSampler`: the same draws and state, with the
    batches read ahead by the workers (``stream=False``: the bare sampler, e.g. for a stacked
    population, which streams its members' batches together).
    """
    if benchmark.setting == "mtl":
        sampler = EpochSampler(benchmark.split("train"), batch_size, seed, augment)
    else:
        sampler = MixtureSampler([splits["train"] for splits in benchmark.domains.values()], batch_size, seed, augment)
    if stream and streams(sampler.splits):
        return StreamingSampler(sampler)
    return sampler
