"""Where a run computes: the torch device and its CPU threads, from the config."""

from __future__ import annotations

import os

import torch

from scalarize.train.distributed import Distributed, DistributedError

THREADS_VARIABLE = "SCALARIZE_THREADS"


def resolve_threads(threads: int | None) -> int:
    """The torch intra-op thread count: ``threads``, else ``$SCALARIZE_THREADS``, else 1.

    One thread by default: torch's own default (one per core) fights over the cores with any
    other work on a shared machine (the README's `threads:` paragraph has the measurement), and a
    fixed count keeps the numbers the same whatever the load.
    """
    if threads is not None:
        return threads
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_VARIABLE}: must be a positive integer, got {value!r}")
    return int(value)


def apply_threads(threads: int | None) -> int:
    """Sets torch's intra-op threads (see :func:`resolve_threads`); returns the count."""
    count = resolve_threads(threads)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was asked for but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def run_device(name: str, distributed: Distributed | None = None) -> torch.device:
    """The run's device: the config's (:func:`resolve_device`), or in data-parallel training the
    device its processes were started for (``DistributedError`` when the two disagree)."""
    device = resolve_device(name)
    if distributed is None:
        return device
    if device.type != distributed.device.type:
        raise DistributedError(
            f"device: {name!r} resolves to {device.type}, but the processes were started for "
            f"{distributed.device.type} ({distributed.backend}); use the same device in every run"
        )
    return distributed.device
