"""Loader worker processes that read a split's rows, and the ordered passes they read.

A split read from storage reads a batch in two steps (:mod:`scalarize.data.benchmark`):
``read(index)`` on the CPU, in any process, and ``finish(inputs, targets)`` in the run's process
(to the device). This module runs the first step in the worker processes of a
``torch.utils.data.DataLoader``: a *request* names groups of rows, ``(split position, rows)``, a
worker reads them (by default each group with its split's ``read``, concatenated in order) and the
run's process finishes the result. It knows splits only by that protocol (``read``, ``finish``,
``batch``, ``workers``, ``device``, ``len``), so that the splits can use it and the training
streams (:mod:`scalarize.data.streaming`) can build on both.

**Evaluation** (:func:`ordered_batches`): consecutive batches, read by workers when reading them
in the run's process would take longer than starting the workers (:data:`WORKER_START_SECONDS`).

A truncated or unreadable file met by a worker ends the run with one line naming it
(:class:`~scalarize.data.errors.DataFileError`), not with the worker's traceback; a worker that
dies (killed by the out-of-memory killer, a signal, a crash in native code) ends it with one line
too (:class:`LoaderWorkerError`, :func:`worker_death`): the checkpoints written so far are kept,
and the same command resumes.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from scalarize.data.errors import BenchmarkError, DataFileError

WORKERS_ENV = "SCALARIZE_WORKERS"
#: Batches each worker reads ahead.
PREFETCH = 2
#: What starting the workers of an ordered pass costs (measured: 0.3-0.4 s for two workers and
#: their first batch on a 2-core CPU). An evaluation pass that reads faster than that in the
#: run's process (a small split, or the decoded cache: ~13,000 images/s at 64 px) is read there.
WORKER_START_SECONDS = 0.5

Groups = Sequence[tuple[int, np.ndarray]]
#: Reads the rows of groups ``(split position, rows)`` of ``splits`` on the CPU: inputs, targets.
GroupReader = Callable[[Sequence[Any], Groups], tuple[Any, dict[str, Tensor]]]


def default_workers() -> int:
    """Loader workers per stream: ``$SCALARIZE_WORKERS``, else 2 (at most the number of CPUs)."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit():
            raise ValueError(f"{WORKERS_ENV}: must be an integer >= 0, got {value!r}")
        return int(value)
    return min(2, os.cpu_count() or 1)


def shared_uint8(shape: tuple[int, ...]) -> Tensor:
    """An uninitialised uint8 tensor in shared memory (a worker's result reaches the run's process
    without a copy)."""
    storage = torch.UntypedStorage._new_shared(math.prod(shape))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def read_parts(splits: Sequence[Any], groups: Groups) -> tuple[Any, dict[str, Tensor]]:
    """The rows of ``groups`` read by each split's ``read`` and concatenated in order."""
    parts = [splits[d].read(torch.as_tensor(np.asarray(rows, dtype=np.int64))) for d, rows in groups]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}


class _Failure:
    """A worker's one-line data error, raised again in the run's process."""

    def __init__(self, message: str) -> None:
        self.message = message


class _Reader:
    """The loader's 'dataset': reads the rows a request names, in a worker process.

    A request is ``(tag, members)``: ``members`` is a list (one per member, or one) of groups
    ``(split position, rows)``; the result is ``(tag, (inputs [total, ...], targets))`` with every
    member's groups concatenated in order.
    """

    def __init__(self, splits: Sequence[Any], read: GroupReader) -> None:
        self.splits = list(splits)
        self.read = read

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int):
        raise TypeError("read by requests (__getitems__)")

    def __getitems__(self, request):
        tag, members = request
        try:
            return tag, self.read(self.splits, [group for groups in members for group in groups])
        except DataFileError as error:
            return tag, _Failure(str(error).splitlines()[0])


def _unwrap(result):
    return result


class LoaderWorkerError(BenchmarkError):
    """A loader worker process died while reading (one line; the run's checkpoints are kept)."""


#: torch's messages for a dead worker: from the loader's queue ("... (pid(s) 12) exited
#: unexpectedly") and from its SIGCHLD handler ("... (pid 12) is killed by signal: Killed.").
_WORKER_DIED = re.compile(r"^DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\) (.*)$")


def worker_death(error: BaseException) -> str | None:
    """The one line for torch's error about a dead loader worker, or ``None`` for any other."""
    found = (
        _WORKER_DIED.match(str(error).strip().splitlines()[0])
        if isinstance(error, RuntimeError) and str(error)
        else None
    )
    if found is None:
        return None
    pids, how = found.group(1).strip(), found.group(2).strip().rstrip(". ")
    return (
        f"a data loader worker (pid {pids}) {how} (killed by the out-of-memory killer or a signal?); what was "
        f"written so far is kept: run the same command again to resume, with fewer loader workers "
        f"({WORKERS_ENV}=0 reads in the run's process) or smaller batches if memory ran out"
    )


class _Guarded:
    """A loader's iterator whose dead-worker ``RuntimeError`` becomes a :class:`LoaderWorkerError`."""

    def __init__(self, iterator: Iterator) -> None:
        self.iterator = iterator

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.iterator)
        except RuntimeError as error:
            line = worker_death(error)
            if line is None:
                raise
            raise LoaderWorkerError(line) from None


def worker_loader(splits: Sequence[Any], requests: Iterable, workers: int, read: GroupReader = read_parts) -> Iterator:
    """``(tag, data)`` for each request ``(tag, members)``, read by ``workers`` loader workers
    (pinned for a GPU); pass ``data`` to :func:`checked` before use. A worker that dies is a
    one-line :class:`LoaderWorkerError`."""
    device = splits[0].device
    loader = DataLoader(
        _Reader(splits, read),
        batch_sampler=requests,
        num_workers=workers,
        collate_fn=_unwrap,
        pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH,
    )
    return _Guarded(iter(loader))


def checked(data: Any) -> Any:
    """A worker's result, or its data error raised here (one line naming the file)."""
    if isinstance(data, _Failure):
        raise DataFileError(data.message)
    return data


def ordered_batches(split: Any, size: int) -> Iterator[tuple[Any, dict[str, Tensor]]]:
    """``split``'s consecutive batches of at most ``size`` samples, on its device.

    The first batch is read in the run's process and timed; the rest are read by the split's
    loader workers when reading them here would take longer than starting the workers
    (:data:`WORKER_START_SECONDS`), else here too. Either way the batches are the same.
    """
    bounds = [(start, min(start + size, len(split))) for start in range(0, len(split), size)]
    if not bounds:
        return
    started = time.perf_counter()
    first = split.batch(torch.arange(*bounds[0]))
    seconds = time.perf_counter() - started
    yield first
    rest = bounds[1:]
    if split.workers == 0 or seconds * len(rest) < WORKER_START_SECONDS:
        for start, stop in rest:
            yield split.batch(torch.arange(start, stop))
        return
    requests = [(i, [[(0, np.arange(start, stop))]]) for i, (start, stop) in enumerate(rest)]
    for _, data in worker_loader([split], requests, min(split.workers, len(rest))):
        yield split.finish(*checked(data))
