"""Evaluation: every objective's loss and metrics on a split, and the score that ranks epochs.

Metric names are ``"<objective>/<metric>"``: ``left/accuracy``, ``left/loss`` in MTL, and
``mnist/accuracy`` in MDL where each domain is evaluated on its own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.data.benchmark import Benchmark, Split
from scalarize.data.task import Task
from scalarize.models.multitask import MultiTaskModel

EVAL_BATCH = 1024


def task_losses(benchmark: Benchmark, outputs: dict[str, Tensor], targets: dict[str, Tensor], counts: Tensor) -> Tensor:
    """The ``[T]`` training losses of one batch (T objectives).

    MTL: each task's mean loss. MDL: the mean loss of each domain's part of the batch (the batch
    is grouped by domain, ``counts[d]`` samples each; a domain absent from the batch gets 0).
    """
    if benchmark.setting == "mtl":
        return torch.stack([t.loss(outputs[t.name], targets[t.name]) for t in benchmark.tasks])
    task = benchmark.tasks[0]
    per_sample = task.loss(outputs[task.name], targets[task.name], reduction="none")
    counts = counts.to(per_sample.device)
    domain = torch.repeat_interleave(torch.arange(len(counts), device=per_sample.device), counts)
    sums = per_sample.new_zeros(len(counts)).index_add(0, domain, per_sample)
    return sums / counts.clamp(min=1).to(sums.dtype)


@torch.no_grad()
def _evaluate_split(model: MultiTaskModel, split: Split, tasks: list[Task]) -> dict[str, dict[str, float]]:
    sums: dict[str, dict[str, Tensor]] = {t.name: {} for t in tasks}
    for start in range(0, len(split), EVAL_BATCH):
        inputs = split.inputs[start : start + EVAL_BATCH]
        _, outputs = model(inputs)
        for task in tasks:
            target = split.targets[task.name][start : start + EVAL_BATCH]
            values = task.metric_sums(outputs[task.name], target)
            values["loss"] = task.loss(outputs[task.name], target, reduction="sum").double()
            for key, value in values.items():
                sums[task.name][key] = sums[task.name].get(key, 0.0) + value
    return {t: {k: float(v) / len(split) for k, v in values.items()} for t, values in sums.items()}


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


def selection_score(metrics: dict[str, float], benchmark: Benchmark) -> float:
    """Mean of the objectives' primary metrics, signed so that higher is better.

    Ranks evaluations to pick the one whose test metrics are reported.
    """
    values = [metrics[key] if up else -metrics[key] for key, up in primary_metrics(benchmark)]
    return sum(values) / len(values)
