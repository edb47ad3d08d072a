"""A user's own pieces that break the contract, one way each, for tests/test_contract_breaks.py:
models whose forward returns the wrong thing or whose head has the wrong width, datasets with
targets under a wrong name, numpy inputs, or a worker-killing item, and task kinds that miss
part of theirs (issue 24, item 9)."""

from __future__ import annotations

import os
import signal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, get_worker_info

from scalarize.data import Benchmark, Task, TaskKind
from scalarize.data.task import MeanOverSamples


class Items(Dataset):
    """Item i: a [6] input and {"a": one of 4 classes, "b": a [1] regression target}; every class
    occurs from the first items on (the set-up's probe reads items 0 and 1: classes 3 and 0)."""

    def __init__(self, n: int, seed: int, names=("a", "b"), numpy: bool = False, kill: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.arange(n).add(3) % 4
        self.names, self.numpy, self.kill = names, numpy, kill

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        if self.kill and get_worker_info() is not None:  # as the out-of-memory killer would
            os.kill(os.getpid(), signal.SIGKILL)
        x = self.x[i].numpy() if self.numpy else self.x[i]
        return x, {self.names[0]: self.y[i], self.names[1]: self.x[i, :1] * 2}


def benchmark(kind: str = "multiclass", names=("a", "b"), numpy: bool = False, kill: bool = False) -> Benchmark:
    tasks = [Task("a", kind, 4), Task("b", "regression", 1)]
    splits = {
        s: Items(96 if s == "train" else 32, i, names, numpy, kill and s == "train")
        for i, s in enumerate(("train", "val", "test"))
    }
    return Benchmark.from_datasets("contract", tasks, splits)


def wrong_names() -> Benchmark:
    return benchmark(names=("c", "b"))


def numpy_inputs() -> Benchmark:
    return benchmark(numpy=True)


def killing_workers() -> Benchmark:
    return benchmark(kill=True)


class Net(nn.Module):
    """``mode``: ``ok`` returns (features, {task: output}); ``dict`` only {task: output};
    ``three`` a 3-tuple; ``swapped`` ({task: output}, features)."""

    def __init__(self, a: int = 4, mode: str = "ok") -> None:
        super().__init__()
        self.body, self.a, self.b = nn.Linear(6, 8), nn.Linear(8, a), nn.Linear(8, 1)
        self.mode = mode

    def forward(self, x: Tensor):
        z = torch.relu(self.body(x))
        out = {"a": self.a(z), "b": self.b(z)}
        if self.mode == "dict":
            return out
        if self.mode == "three":
            return z, out, None
        if self.mode == "swapped":
            return out, z
        return z, out


def net(a: int = 4, mode: str = "ok") -> nn.Module:
    return Net(a, mode)


def trunk_and_heads(a: int = 4):
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU()), {"a": nn.Linear(8, a), "b": nn.Linear(8, 1)}


class NeverComputed(TaskKind):
    """Its primary metric is not what its accumulator computes."""

    primary_metric = "acc"

    def loss(self, output, target, reduction="mean"):
        return F.cross_entropy(output, target, reduction=reduction)

    def accumulator(self):
        return MeanOverSamples(lambda out, target: {"accuracy": out.argmax(-1) == target})


class _ListMetrics:
    def reset(self) -> None: ...

    def update(self, output, target) -> None: ...

    def compute(self):
        return [0.5]


class ListCompute(NeverComputed):
    primary_metric = "accuracy"

    def accumulator(self):
        return _ListMetrics()


class NoAccumulator(TaskKind):
    primary_metric = "accuracy"

    def loss(self, output, target, reduction="mean"):
        return F.cross_entropy(output, target, reduction=reduction)


class MeanOnly(TaskKind):
    """Ignores ``reduction``: always the batch mean."""

    primary_metric = "accuracy"

    def loss(self, output, target, reduction="mean"):
        return F.cross_entropy(output, target)

    def accumulator(self):
        return MeanOverSamples(lambda out, target: {"accuracy": out.argmax(-1) == target})


def kind(name: str) -> Benchmark:
    return benchmark(f"contract_plugins:{name}")
