"""A task: what one head predicts, how it is scored, and how its loss is computed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

TaskKind = Literal["multiclass", "binary", "regression"]
TASK_KINDS: tuple[str, ...] = ("multiclass", "binary", "regression")


@dataclass(frozen=True)
class Task:
    """One prediction target.

    Attributes:
        name: unique within a benchmark.
        kind: ``multiclass`` (cross-entropy, accuracy), ``binary`` (logistic loss on one logit,
            accuracy) or ``regression`` (mean squared error).
        num_outputs: the head's output size (classes, 1 for binary, target dimension).
        primary_metric: the metric that ranks models; ``higher_is_better`` is its direction.
    """

    name: str
    kind: TaskKind
    num_outputs: int
    primary_metric: str = field(default="")
    higher_is_better: bool = field(default=True)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {TASK_KINDS}, got {self.kind!r}")
        if not self.primary_metric:
            metric = "mse" if self.kind == "regression" else "accuracy"
            object.__setattr__(self, "primary_metric", metric)
            object.__setattr__(self, "higher_is_better", self.kind != "regression")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("mse",) if self.kind == "regression" else ("accuracy",)

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """The task's training loss (per sample with ``reduction='none'``)."""
        if self.kind == "multiclass":
            return F.cross_entropy(output, target, reduction=reduction)
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(
                output.squeeze(-1), target.to(output.dtype), reduction=reduction
            )
        per_sample = (output - target.to(output.dtype)).pow(2).flatten(1).mean(1)
        return per_sample if reduction == "none" else per_sample.mean()

    def metric_sums(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Sums over the batch of each metric (divide by the sample count to average)."""
        if self.kind == "multiclass":
            return {"accuracy": (output.argmax(-1) == target).sum().to(torch.float64)}
        if self.kind == "binary":
            predicted = output.squeeze(-1) > 0
            return {"accuracy": (predicted == target.bool()).sum().to(torch.float64)}
        error = (output - target.to(output.dtype)).pow(2).flatten(1).mean(1)
        return {"mse": error.sum().to(torch.float64)}
