"""Batch samplers with explicit, checkpointable state.

* :class:`EpochSampler` (MTL): one shuffled pass over the training split per epoch.
* :class:`MixtureSampler` (MDL, Royer et al. 2023): every batch is drawn from the domains with
  probabilities equal to the weights (resampling). Each domain cycles through its own shuffled
  order, so a small domain is revisited more often when its weight exceeds its size share. The
  samples of a batch are grouped by domain, and ``counts[d]`` says how many came from domain d.

Both own a ``torch.Generator`` whose state, with their positions, is in ``state_dict``: a run
resumed from a checkpoint draws exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from scalarize.data.benchmark import AnySplit


@dataclass
class Batch:
    inputs: Tensor
    targets: dict[str, Tensor]
    counts: Tensor  # [D] samples per domain, in domain order (D = 1 in MTL)


class EpochSampler:
    """Shuffled mini-batches over one split: each pass visits every sample once.

    ``steps_per_epoch = ceil(N / batch_size)``; the last batch of a pass may be smaller. The
    position inside the pass is part of the state, so a run can stop and resume anywhere.
    """

    def __init__(self, split: AnySplit, batch_size: int, seed: int) -> None:
        self.split = split
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(split), generator=self.generator)
        self.position = 0
        self._count = torch.ones(1, dtype=torch.long)

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

    def next_batch(self) -> Batch:
        index = self.next_index()
        inputs, targets = self.split.batch(index)
        return Batch(inputs, targets, self._count * len(index))

    def epoch(self) -> Iterator[Batch]:
        for _ in range(self.steps_per_epoch):
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order.clone(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])


class MixtureSampler:
    """Batches drawn from several domains with given probabilities (MDL resampling).

    An epoch is ``ceil(total_train_size / batch_size)`` batches, whatever the mixture.
    """

    def __init__(self, splits: Sequence[AnySplit], batch_size: int, seed: int) -> None:
        self.splits = list(splits)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.orders = [torch.randperm(len(s), generator=self.generator) for s in self.splits]
        self.positions = [0] * len(self.splits)
        self.weights = torch.full((len(self.splits),), 1.0 / len(self.splits), dtype=torch.float64)

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

    def next_indices(self) -> list[Tensor]:
        """The next batch's indices into each domain's split (on the CPU; empty for a domain
        the mixture did not draw), without reading any sample."""
        draws = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        counts = torch.bincount(draws, minlength=len(self.splits)).tolist()
        return [self._take(d, c) if c else torch.zeros(0, dtype=torch.long) for d, c in enumerate(counts)]

    def next_batch(self) -> Batch:
        indices = self.next_indices()
        counts = torch.tensor([len(i) for i in indices])
        inputs, targets = [], {}
        for domain, index in enumerate(indices):
            if len(index) == 0:
                continue
            domain_inputs, domain_targets = self.splits[domain].batch(index)
            inputs.append(domain_inputs)
            for key, value in domain_targets.items():
                targets.setdefault(key, []).append(value)
        return Batch(torch.cat(inputs), {k: torch.cat(v) for k, v in targets.items()}, counts)

    def epoch(self) -> Iterator[Batch]:
        for _ in range(self.steps_per_epoch):
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "orders": [o.clone() for o in self.orders],
            "positions": list(self.positions),
            "weights": self.weights.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.orders = [o.clone() for o in state["orders"]]
        self.positions = list(state["positions"])
        self.weights = state["weights"].clone()


def build_sampler(benchmark, batch_size: int, seed: int) -> EpochSampler | MixtureSampler:
    """The training sampler of a run: epochs over the one training split (MTL), or the domain
    mixture (MDL, the weights are sampling ratios)."""
    if benchmark.setting == "mtl":
        return EpochSampler(benchmark.split("train"), batch_size, seed)
    return MixtureSampler([splits["train"] for splits in benchmark.domains.values()], batch_size, seed)
