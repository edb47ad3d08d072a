"""Evaluation: every objective's loss and metrics on a split, and the score that ranks epochs.

Metric names are ``"<objective>/<metric>"``: ``left/accuracy``, ``left/loss`` in MTL, and
``mnist/accuracy`` in MDL where each domain is evaluated on its own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.data.benchmark import AnySplit, Benchmark
from scalarize.data.task import Task
from scalarize.models.multitask import MultiTaskModel
from scalarize.train.losses import objective_losses

EVAL_BATCH = 1024


def task_losses(benchmark: Benchmark, outputs: dict[str, Tensor], targets: dict[str, Tensor], counts: Tensor) -> Tensor:
    """The ``[T]`` training losses of one batch (see :func:`scalarize.train.losses.objective_losses`)."""
    return objective_losses(benchmark, outputs, targets, counts)


class _LossMean:
    """The mean over samples of a task's per-sample loss (float64 sums on the device)."""

    def __init__(self, task: Task) -> None:
        self.task, self.total, self.count = task, None, 0

    def update(self, output: Tensor, target: Tensor) -> None:
        value = self.task.loss(output, target, reduction="none").detach().to(torch.float64).sum()
        self.total = value if self.total is None else self.total + value
        self.count += len(target)

    def compute(self) -> float:
        return float(self.total) / self.count if self.count else float("nan")


@torch.no_grad()
def _evaluate_split(model: MultiTaskModel, split: AnySplit, tasks: list[Task]) -> dict[str, dict[str, float]]:
    metrics = {t.name: t.accumulator() for t in tasks}
    losses = {t.name: _LossMean(t) for t in tasks}
    for inputs, targets in split.batches(EVAL_BATCH):
        _, outputs = model(inputs)
        for task in tasks:
            metrics[task.name].update(outputs[task.name], targets[task.name])
            losses[task.name].update(outputs[task.name], targets[task.name])
    return {t.name: {**metrics[t.name].compute(), "loss": losses[t.name].compute()} for t in tasks}


def evaluate(model: MultiTaskModel, benchmark: Benchmark, split: str) -> dict[str, float]:
    """``{"<objective>/<metric>": value}`` for every objective of the benchmark on ``split``."""
    was_training = model.training
    model.eval()
    results: dict[str, float] = {}
    try:
        for domain, splits in benchmark.domains.items():
            per_task = _evaluate_split(model, splits[split], benchmark.tasks)
            for task, values in per_task.items():
                objective = task if benchmark.setting == "mtl" else domain
                results.update({f"{objective}/{k}": v for k, v in values.items()})
    finally:
        model.train(was_training)
    return results


def primary_metrics(benchmark: Benchmark) -> list[tuple[str, bool]]:
    """Per objective, ``("<objective>/<primary metric>", higher_is_better)``."""
    if benchmark.setting == "mtl":
        return [(f"{t.name}/{t.primary_metric}", t.higher_is_better) for t in benchmark.tasks]
    task = benchmark.tasks[0]
    return [(f"{d}/{task.primary_metric}", task.higher_is_better) for d in benchmark.domains]
