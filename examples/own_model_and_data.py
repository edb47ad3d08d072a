"""Your own model, data and task kind, trained with an MTO method (PCGrad) and with uniform
scalarization: the three doors of docs/own-model.md, from Python.

    python examples/own_model_and_data.py [--small]
"""

import argparse

import torch
from torch import nn

from scalarize import Task, TaskKind, TrainConfig, Trainer
from scalarize.data import Benchmark
from scalarize.data.task import MeanOverSamples
from scalarize.methods import build_method


class Huber(TaskKind):
    """A task kind of your own: a per-sample loss and its metric accumulator."""

    metric_names = ("mae",)
    primary_metric, higher_is_better = "mae", False

    def loss(self, output, target, reduction="mean"):
        per_sample = nn.functional.huber_loss(output, target, reduction="none").mean(1)
        return per_sample if reduction == "none" else per_sample.mean()

    def accumulator(self):
        return MeanOverSamples(lambda out, target: {"mae": (out - target).abs().mean(1)})


class Readings(torch.utils.data.Dataset):
    """A map-style dataset whose item is (input, {task: target}): two regressions of 16 sensors."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 16, generator=g)
        mix = torch.randn(16, 2, generator=torch.Generator().manual_seed(123)) / 4
        z = self.x @ mix
        self.y = {"load": torch.tanh(z[:, :1]) * 3, "temperature": z[:, 1:] ** 2 / 4}

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], {k: v[i] for k, v in self.y.items()}


class Net(nn.Module):
    """Any module whose forward returns (representation, {task: output})."""

    def __init__(self, hidden=64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({"load": nn.Linear(hidden, 1), "temperature": nn.Linear(hidden, 1)})

    def forward(self, x):
        z = self.trunk(x)
        return z, {name: head(z) for name, head in self.heads.items()}


def main(small: bool) -> dict[str, dict[str, float]]:
    n, epochs = (256, 2) if small else (4096, 20)
    tasks = [Task("load", Huber(), 1), Task("temperature", "regression", 1)]
    splits = {s: Readings(n if s == "train" else n // 4, seed) for seed, s in enumerate(("train", "val", "test"))}
    bench = Benchmark.from_datasets("readings", tasks, splits)
    results = {}
    for method in ("scalarization", "pcgrad"):
        torch.manual_seed(0)
        config = TrainConfig(epochs=epochs, batch_size=64, device="cpu", optimizer={"lr": 3e-3})
        result = Trainer(config, bench, Net(), build_method(method), progress=False).fit()
        results[method] = {k: result.test[k] for k in ("load/mae", "temperature/mse")}
        print(
            f"{method:14s} load MAE {results[method]['load/mae']:.4f}   temperature MSE {results[method]['temperature/mse']:.4f}"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CI-sized run (seconds)")
    main(parser.parse_args().small)
