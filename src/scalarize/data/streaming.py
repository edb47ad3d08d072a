"""Batches read from storage by loader workers, ahead of use, with exact sampler state.

A split read from storage (:class:`~scalarize.data.benchmark.ImageSplit`, or a
:class:`~scalarize.data.benchmark.DatasetSplit` over a user's Dataset) is read in two steps:
``read`` (uint8 images and targets on the CPU, done by a worker process of a
``torch.utils.data.DataLoader``) and ``finish`` (in the run's process: to the device, from pinned
memory with an asynchronous copy on a GPU, and converted to float32 there). Augmentation runs on
the device after ``finish``.

**Training** (:class:`BatchStream`): the run's samplers stay where they are and keep the state
of the batches *consumed*. The stream draws ahead from *forks* of them (``sampler.fork()``, same
state, own generators) and the workers read those draws while the model trains. Each time a batch
is consumed, the run's samplers draw it for real, and the stream checks that the batch read ahead
is that draw. It is, unless something changed the samplers since the fork (new MDL weights, a
loaded state): then what was read ahead is dropped, the batch is read in the run's process, and
the look-ahead restarts from the run's samplers. So a checkpoint taken between two steps holds
exactly the state of a run without prefetching, and a resumed run draws the same batches.

**Populations**: one stream serves the P members of a stacked population: each request names
every member's draw, a worker reads them into one ``[P, B, ...]`` array (in shared memory, no copy
per member), and all members read the same storage.

The loader workers, their requests and the evaluation passes (consecutive batches) live in
:mod:`scalarize.data.workers`, below the splits; this module adds the training streams and the
image splits' grouped read (:func:`read_groups`: every group of a request into one array). A
truncated or unreadable image met by a worker ends the run with one line naming the file
(:class:`~scalarize.data.errors.DataFileError`), not with the worker's traceback.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from scalarize.data.benchmark import DatasetSplit, ImageSplit
from scalarize.data.draws import Batch, Draw, read_draws
from scalarize.data.workers import checked, read_parts, shared_uint8, worker_loader


def streams(splits: Sequence[Any]) -> bool:
    """Whether batches of ``splits`` are read by loader workers: every split is read from storage
    (images or a Dataset, all of one kind) and has workers."""
    kinds = {type(split) for split in splits}
    return len(kinds) == 1 and kinds <= {ImageSplit, DatasetSplit} and all(split.workers > 0 for split in splits)


def read_groups(splits: Sequence[Any], groups: Sequence[tuple[int, np.ndarray]]) -> tuple[Any, dict[str, Tensor]]:
    """The rows of ``groups`` (domain position, rows) read on the CPU and concatenated in order:
    image splits into one (shared) array, any other by each split's ``read``."""
    if all(isinstance(splits[d], ImageSplit) for d, _ in groups):
        shape = splits[groups[0][0]].images.shape
        total = sum(len(rows) for _, rows in groups)
        inputs = (
            shared_uint8((total, *shape))
            if torch.utils.data.get_worker_info() is not None
            else torch.empty((total, *shape), dtype=torch.uint8)
        )
        view, slot, targets = inputs.numpy(), 0, {}
        for domain, rows in groups:
            split, rows = splits[domain], np.asarray(rows, dtype=np.int64)
            split.images.read_into(split.rows[rows], view[slot : slot + len(rows)])
            for key, value in split.targets.items():
                targets.setdefault(key, []).append(value[torch.from_numpy(rows)])
            slot += len(rows)
        return inputs, {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in targets.items()}
    return read_parts(splits, groups)


#: A stream returns the heap's free pages to the system every this many batches (:func:`trim_heap`).
TRIM_EVERY = 8
_libc: Any = None


def trim_heap() -> None:
    """Returns the free pages of the heap to the system (glibc's ``malloc_trim``; elsewhere nothing).

    glibc raises its mmap threshold to the size of the large blocks freed (up to 32 MiB), so the
    float32 batches a stream converts (6 MiB at 64 px and batch 128) come from the heap, whose
    free middle it returns to the system only now and then: a stream's resident memory rose by
    ~300 MiB and fell back every ~65 batches (measured at 64 px). Trimming every
    :data:`TRIM_EVERY` batches keeps it flat; a fixed mmap threshold did too, but made a CPU
    training step up to 1.7x slower (every large activation mapped and faulted in anew).
    """
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else False
            _libc.malloc_trim  # noqa: B018  (glibc only)
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


# ---------------------------------------------------------------- training


class _LookAhead:
    """The loader's batch sampler: forks of the run's samplers draw the next requests; the draws
    in flight are kept by sequence number, with the generation of the forks that drew them."""

    def __init__(self) -> None:
        self.samplers: list = []
        self.generation = 0
        self.sequence = 0
        self.in_flight: dict[int, tuple[int, list[Draw]]] = {}

    def restart(self, samplers: Sequence[Any]) -> None:
        self.samplers = [s.fork() for s in samplers]
        self.generation += 1

    def __iter__(self):
        while True:
            draws = [s.next_draw() for s in self.samplers]
            sequence, self.sequence = self.sequence, self.sequence + 1
            self.in_flight[sequence] = (self.generation, draws)
            yield sequence, [[(d, rows.numpy()) for d, rows in draw.groups] for draw in draws]


class BatchStream:
    """The batches of ``samplers`` (one run's, or the P members' of a stacked population,
    ``stacked=True``: inputs ``[P, B, ...]``), read ahead by loader workers (see the module
    docstring). The samplers stay the run's: their state is that of the batches consumed.

    ``workers``: default the splits' own; with none (or in-memory splits) every batch is read in
    the run's process, as :func:`~scalarize.data.sampling.read_draws` reads it.
    """

    def __init__(self, samplers: Sequence[Any], stacked: bool = False, workers: int | None = None) -> None:
        self.samplers = list(samplers)
        self.splits = self.samplers[0].splits
        self.stacked = stacked
        self.augmentation = self.samplers[0].augmentation
        if not streams(self.splits):
            workers = 0
        self.workers = min(split.workers for split in self.splits) if workers is None else workers
        self._ahead = _LookAhead()
        self._iterator: Iterator | None = None
        #: Times the look-ahead was dropped because the samplers changed under it.
        self.restarts = 0
        self._consumed = 0

    def invalidate(self) -> None:
        """The samplers changed (state loaded, weights set): draw ahead from their new state."""
        if self._iterator is not None:
            self._ahead.restart(self.samplers)
            self.restarts += 1

    def close(self) -> None:
        """Stops the workers (they also stop when the stream is garbage-collected)."""
        self._iterator = None

    def _weights_changed(self) -> bool:
        for sampler, fork in zip(self.samplers, self._ahead.samplers):
            mine, theirs = getattr(sampler, "weights", None), getattr(fork, "weights", None)
            if mine is not theirs and not torch.equal(mine, theirs):
                return True
        return False

    def next_batch(self) -> Batch:
        if self.workers == 0:
            return read_draws(self.splits, [s.next_draw() for s in self.samplers], self.augmentation, self.stacked)
        if self._iterator is None:
            self._ahead.restart(self.samplers)
            self._iterator = worker_loader(self.splits, self._ahead, self.workers, read_groups)
        elif self._weights_changed():
            self.invalidate()
        draws = [s.next_draw() for s in self.samplers]  # the run's draw: what a run without workers reads
        self._consumed += 1
        if self._consumed % TRIM_EVERY == 0:
            trim_heap()
        while True:
            sequence, data = next(self._iterator)
            generation, ahead = self._ahead.in_flight.pop(sequence)
            if generation == self._ahead.generation:
                break
        if not all(a.same_as(d) for a, d in zip(ahead, draws)):
            self.invalidate()  # from the state after this draw
            return read_draws(self.splits, draws, self.augmentation, self.stacked)
        inputs, targets = checked(data)
        if self.stacked:
            size = len(self.samplers)
            inputs = inputs.reshape(size, -1, *inputs.shape[1:])
            targets = {k: v.reshape(size, -1, *v.shape[1:]) for k, v in targets.items()}
        inputs, targets = self.splits[0].finish(inputs, targets)
        if self.augmentation is not None:
            inputs = self.augmentation.apply(inputs, torch.cat([d.augment for d in draws]))
        counts = torch.stack([d.counts for d in draws]) if self.stacked else draws[0].counts
        return Batch(inputs, targets, counts)


class StreamingSampler:
    """A sampler whose batches loader workers read ahead: the same draws, ``state_dict`` and
    interface as the sampler it wraps (:attr:`sampler`), which keeps the state of the batches
    consumed (see :class:`BatchStream`)."""

    def __init__(self, sampler: Any, workers: int | None = None) -> None:
        self.sampler = sampler
        self.stream = BatchStream([sampler], stacked=False, workers=workers)

    def __getattr__(self, name: str) -> Any:
        if name in ("sampler", "stream"):
            raise AttributeError(name)
        return getattr(self.sampler, name)

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def set_weights(self, weights: Tensor | None) -> None:
        self.sampler.set_weights(weights)  # the stream sees the new weights at the next batch

    def next_batch(self) -> Batch:
        return self.stream.next_batch()

    def epoch(self) -> Iterator[Batch]:
        for _ in range(self.steps_per_epoch):
            yield self.next_batch()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self.stream.invalidate()

    def close(self) -> None:
        self.stream.close()


def population_stream(samplers: Sequence[Any]) -> BatchStream | None:
    """The stacked batches ``[P, B, ...]`` of P members' samplers, when they need more than the
    one gather of in-memory tensors: streamed splits (read by loader workers) or augmentation.
    ``None`` otherwise."""
    if streams(samplers[0].splits) or samplers[0].augmentation is not None:
        return BatchStream(samplers, stacked=True)
    return None
