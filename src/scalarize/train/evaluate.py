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
        self.task, self.count = task, 0
        self.total: Tensor | None = None

    def update(self, output: Tensor, target: Tensor) -> None:
        value = self.task.loss(output, target, reduction="none").detach().to(torch.float64).sum()
        self.total = value if self.total is None else self.total + value
        self.count += len(target)

    def compute(self) -> float:
        if self.total is None or not self.count:
            return float("nan")
        return float(self.total) / self.count


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
        # Task.__post_init__ always resolves higher_is_better to a bool (the field allows None)
        return [(f"{t.name}/{t.primary_metric}", bool(t.higher_is_better)) for t in benchmark.tasks]
    task = benchmark.tasks[0]
    return [(f"{d}/{task.primary_metric}", bool(task.higher_is_better)) for d in benchmark.domains]


def delta_metrics(benchmark: Benchmark) -> list[tuple[str, bool]]:
    """Per objective, every ``("<objective>/<metric>", higher_is_better)`` that Δm averages over
    (Maninis et al. 2019): all the metrics of a dense task (e.g. mIoU and pixel accuracy), each
    in its own direction, else the primary metric (:meth:`scalarize.data.Task.delta_metrics`)."""
    if benchmark.setting == "mtl":
        return [(f"{t.name}/{m}", up) for t in benchmark.tasks for m, up in t.delta_metrics()]
    task = benchmark.tasks[0]
    return [(f"{d}/{m}", up) for d in benchmark.domains for m, up in task.delta_metrics()]


def check_single_task(values: dict[str, float] | None, metrics: list[tuple[str, bool]]) -> None:
    """Raises a one-line ``ValueError`` unless ``values`` (``config.single_task``) gives one finite,
    strictly positive value for every Δm metric and nothing else."""
    if values is None:
        return
    names = [name for name, _ in metrics]
    missing = [n for n in names if n not in values]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"single_task.{unknown[0]}: not a Δm metric of this benchmark; allowed: {', '.join(names)}")
    if missing:
        raise ValueError(f"single_task: no value for {', '.join(missing)} (Δm needs every one of: {', '.join(names)})")
    for name in names:
        value = values[name]
        if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
            raise ValueError(f"single_task.{name}: must be a positive finite number (Δm divides by it), got {value!r}")


def reference_values(
    metrics: list[tuple[str, bool]], stl_tests: dict[str, dict[str, float]], supplied: dict[str, float] | None = None
) -> list[float] | None:
    """The single-task values Δm compares with: ``supplied`` (``config.single_task``) when given,
    else each metric from the test metrics of its objective's single-task run (``stl_tests``:
    objective → test metrics); ``None`` when one is missing or not positive."""
    if supplied is not None:
        return [float(supplied[name]) for name, _ in metrics]
    try:
        values = [float(stl_tests[name.split("/")[0]][name]) for name, _ in metrics]
    except KeyError:
        return None
    return values if all(v > 0 for v in values) else None
