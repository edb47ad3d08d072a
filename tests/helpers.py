"""Helpers shared by the test files: a benchmark cut small, and equality of nested states."""

from __future__ import annotations

import torch

from scalarize.data.benchmark import Benchmark, Split


def tiny_mdl(bench: Benchmark) -> Benchmark:
    """Two domains cut from the first 90 training samples of the MTL benchmark ``bench``, one task
    (its first): an MDL benchmark that costs nothing to load."""
    split = bench.split("train")
    task = bench.tasks[0]
    rows = {"a": slice(0, 45), "b": slice(45, 90)}
    domains = {
        d: {s: Split(split.inputs[r], {task.name: split.targets[task.name][r]}) for s in ("train", "val", "test")}
        for d, r in rows.items()
    }
    return Benchmark("tiny_mdl", "mdl", [task], domains)


def same_state(a, b) -> bool:
    """Whether two (nested) states are equal: tensors exactly, dicts by key, sequences in order."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b
