"""A task: what one head predicts, its loss, and how it is scored (after LibMTL: task = loss +
metric accumulator).

A :class:`Task` has a name, a head size and a **kind**. The kind holds the behaviour:

* ``loss(output, target, reduction)``: the training loss, per sample with ``reduction='none'``;
* ``accumulator()``: a fresh :class:`MetricAccumulator` (``update(output, target)`` per batch,
  ``compute()`` at the end of a split, ``reset()``), so metrics that are not per-sample means (mIoU
  from a confusion matrix, AUC, per-class recall) can be expressed;
* ``check(output, target)``: a one-line complaint when a target does not fit the head's output;
* ``output_width(output)``: how many outputs per sample the head gives (``output.shape[1]``, or 1
  for ``[N]``), held to the task's ``num_outputs`` (``None``: a kind without a fixed width).

A run checks all of it on one probe batch before anything is written (:meth:`Task.check_kind`,
called by :func:`scalarize.models.contract.probe`): the head's width, ``check``, a ``loss`` that
gives one value per sample with ``reduction='none'``, an ``accumulator()`` whose ``compute()``
returns ``{metric: number}`` with the task's primary metric among them. Each break is one line.

Built-in kinds: ``multiclass`` (cross-entropy, accuracy), ``binary`` (logistic loss on one
logit; accuracy, AUC, logloss, GAUC; NaN labels masked) and ``regression`` (mean squared error); the dense kinds ``segmentation``,
``depth`` and ``normals`` and ``normalized_regression`` (QM9) are in :mod:`scalarize.data.dense`. A kind of your own is a
:class:`TaskKind` subclass, registered with :func:`register_task_kind` or named by import path
(``"mypkg.tasks:FocalKind"``); ``Task.options`` are passed to its constructor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from scalarize.imports import load_object


class MetricAccumulator(Protocol):
    """Accumulates one task's metrics over the batches of a split."""

    def update(self, output: Tensor, target: Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...

    def reset(self) -> None: ...


class MeanOverSamples:
    """Metrics that are means over samples: ``per_sample(output, target) -> {name: [B]}``.

    Sums are kept in float64 on the device of the outputs (no host sync per batch).
    """

    def __init__(self, per_sample: Callable[[Tensor, Tensor], dict[str, Tensor]]) -> None:
        self.per_sample = per_sample
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def update(self, output: Tensor, target: Tensor) -> None:
        values = self.per_sample(output, target)
        for name, value in values.items():
            total = value.detach().to(torch.float64).sum()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.count += len(target)

    def compute(self) -> dict[str, float]:
        if not self.count:
            return {name: float("nan") for name in self.sums}
        return {name: float(total) / self.count for name, total in self.sums.items()}


class TaskKind:
    """The behaviour of a kind of task; subclass it for your own (see the module docstring).

    ``metric_names`` lists what :meth:`accumulator` computes; ``primary_metric`` and
    ``higher_is_better`` are the defaults of the tasks of this kind.
    """

    name: ClassVar[str] = ""
    metric_names: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: Direction of every metric that is not the primary one (``True``: higher is better).
    metric_directions: ClassVar[dict[str, bool]] = {}
    #: The metrics Δm averages over for a task of this kind (Maninis et al. 2019: every metric of
    #: a dense task, e.g. mIoU and pixel accuracy); empty: the primary metric alone.
    delta_metrics: ClassVar[tuple[str, ...]] = ()

    def direction(self, metric: str) -> bool:
        """Whether higher is better for ``metric``."""
        if metric in self.metric_directions:
            return self.metric_directions[metric]
        return self.higher_is_better

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        raise NotImplementedError

    def accumulator(self) -> MetricAccumulator:
        raise NotImplementedError

    def check(self, output: Tensor, target: Tensor) -> str | None:
        """Why ``target`` cannot be scored against ``output`` (one batch), or ``None``."""
        return None

    def output_width(self, output: Tensor) -> int | None:
        """The head's outputs per sample in ``output`` (one batch): its second dimension (classes
        of ``[N, C]`` logits, channels of a dense ``[N, C, H, W]`` map), 1 for ``[N]``. Held to
        the task's ``num_outputs``; return ``None`` for a kind whose head width is free."""
        return int(output.shape[1]) if output.dim() > 1 else 1


def _shape(tensor: Tensor) -> str:
    return "[" + ", ".join(str(s) for s in tensor.shape) + "]"


class Multiclass(TaskKind):
    """Cross-entropy on ``[B, C]`` logits against ``[B]`` class indices; accuracy."""

    name = "multiclass"
    metric_names = ("accuracy",)
    primary_metric = "accuracy"

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        return F.cross_entropy(output, target, reduction=reduction)

    def accumulator(self) -> MetricAccumulator:
        return MeanOverSamples(lambda out, target: {"accuracy": out.argmax(-1) == target})

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if target.is_floating_point() or target.dim() != 1 or output.dim() != 2 or len(target) != len(output):
            return (
                f"targets must be [N] class indices for a [N, C] head output; got target {_shape(target)} "
                f"({target.dtype}) for output {_shape(output)}"
            )
        if len(target) and (int(target.min()) < 0 or int(target.max()) >= output.shape[1]):
            return f"class indices must be in [0, {output.shape[1] - 1}]; got {int(target.min())}..{int(target.max())}"
        return None


def binary_parts(target: Tensor) -> tuple[Tensor, Tensor | None]:
    """A binary target's ``[N]`` labels and its ``[N]`` group ids (``None`` without): ``[N]`` (or
    ``[N, 1]``) holds labels, ``[N, 2]`` labels in column 0 and group ids in column 1."""
    if target.dim() == 2 and target.shape[1] == 2:
        return target[:, 0], target[:, 1]
    return target.reshape(len(target)), None


class BinaryMetrics:
    """Accuracy, exact AUC, logloss, and GAUC when the targets carry group ids, over the samples
    whose label is defined (not NaN). The logits are kept on their device per batch and read to the
    host once, in :meth:`compute` (:mod:`scalarize.data.auc`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.parts: list[tuple[Tensor, Tensor, Tensor | None]] = []

    def update(self, output: Tensor, target: Tensor) -> None:
        labels, groups = binary_parts(target.detach())
        self.parts.append((output.detach().reshape(len(output)), labels, None if groups is None else groups))

    def compute(self) -> dict[str, float]:
        from scalarize.data import auc as ranking

        if not self.parts:
            return {name: float("nan") for name in ("accuracy", "auc", "logloss")}
        logits = torch.cat([p[0] for p in self.parts]).to(torch.float64).cpu().numpy()
        labels = torch.cat([p[1].to(torch.float64) for p in self.parts]).cpu().numpy()
        defined = ~np.isnan(labels)
        logits, labels = logits[defined], labels[defined]
        values = {
            "accuracy": float(np.mean((logits > 0) == (labels > 0.5))) if len(labels) else float("nan"),
            "auc": ranking.auc(logits, labels > 0.5),
            "logloss": ranking.logloss(logits, labels),
        }
        if all(p[2] is not None for p in self.parts):
            groups = torch.cat([p[2] for p in self.parts if p[2] is not None]).cpu().numpy()[defined]
            values["gauc"] = ranking.gauc(logits, labels > 0.5, groups)
        return values


class Binary(TaskKind):
    """Logistic loss on one logit ``[B, 1]`` (or ``[B]``) against labels in {0, 1}; accuracy, AUC
    (exact, :mod:`scalarize.data.auc`), logloss, and GAUC when the target carries groups.

    **Masks.** A label that is NaN is undefined (CVR off the clicked impressions): that sample's
    loss is 0 and no metric reads it. The loss of a batch stays the mean over all its samples
    (``Σ_defined loss / B``, ESMM's "entire space" normalisation), so one run and P stacked members
    reduce it alike; a task whose label is defined on a fraction ``f`` of the samples thus weighs
    ``f`` times its defined-sample mean. The metrics are over the defined samples only.

    **Groups.** A ``[B, 2]`` target holds ``(label, group id)`` per sample (ids exact in float32
    below 2**24); the accumulator then adds ``gauc``, DIN's impression-weighted per-group AUC.

    The primary metric stays ``accuracy`` (the kind's default, for the image benchmarks); the
    tabular benchmarks set ``auc``. Directions: ``logloss`` lower is better, the others higher.
    """

    name = "binary"
    metric_names = ("accuracy", "auc", "logloss", "gauc")
    primary_metric = "accuracy"
    metric_directions: ClassVar[dict[str, bool]] = {"accuracy": True, "auc": True, "gauc": True, "logloss": False}

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        logit = output.reshape(len(output))
        labels, _ = binary_parts(target)
        labels = labels.to(logit.dtype)
        defined = ~torch.isnan(labels)
        per_sample = F.binary_cross_entropy_with_logits(
            logit, torch.where(defined, labels, torch.zeros_like(labels)), reduction="none"
        )
        return _reduce(torch.where(defined, per_sample, torch.zeros_like(per_sample)), reduction)

    def accumulator(self) -> MetricAccumulator:
        return BinaryMetrics()

    def check(self, output: Tensor, target: Tensor) -> str | None:
        grouped = target.dim() == 2 and target.shape[1] == 2
        if (
            output.numel() != len(output)
            or not (grouped or target.numel() == len(target))
            or len(target) != len(output)
        ):
            return (
                f"a binary task needs one logit per sample ([N, 1]) and [N] labels (or [N, 2]: label, group); "
                f"got output {_shape(output)}, target {_shape(target)}"
            )
        return None


class Regression(TaskKind):
    """Mean squared error, averaged over each sample's outputs; the target has the output's shape."""

    name = "regression"
    metric_names = ("mse",)
    primary_metric = "mse"
    higher_is_better = False

    @staticmethod
    def _per_sample(output: Tensor, target: Tensor) -> Tensor:
        return (output - target.to(output.dtype)).pow(2).flatten(1).mean(1)

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        per_sample = self._per_sample(output, target)
        return _reduce(per_sample, reduction)

    def accumulator(self) -> MetricAccumulator:
        return MeanOverSamples(lambda out, target: {"mse": self._per_sample(out, target)})

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if target.shape != output.shape:
            return (
                f"the target's shape {_shape(target)} differs from the head's output {_shape(output)} "
                "(a regression target must have the output's shape, e.g. [N, 1] for one output)"
            )
        return None


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean()


_KINDS: dict[str, type[TaskKind]] = {}


def register_task_kind(cls: type[TaskKind]) -> type[TaskKind]:
    """Adds a kind under its ``name`` (class decorator or plain call)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _KINDS[cls.name] = cls
    return cls


def available_task_kinds() -> list[str]:
    return sorted(_KINDS)


for _kind in (Multiclass, Binary, Regression):
    register_task_kind(_kind)


def resolve_kind(kind: str | TaskKind, options: dict[str, Any] | None = None) -> TaskKind:
    """A kind by registered name, by import path (``"pkg.mod:Kind"``), or as given."""
    if isinstance(kind, TaskKind):
        return kind
    if not isinstance(kind, str):
        raise ValueError(f"kind must be a name or a TaskKind, got {kind!r}")
    if kind in _KINDS:
        cls: Any = _KINDS[kind]
    elif ":" in kind:
        cls = load_object(kind, "task kind")
    else:
        raise ValueError(
            f"unknown kind {kind!r}; allowed: {', '.join(available_task_kinds())} or an import path pkg.mod:Kind"
        )
    made = cls(**(options or {})) if isinstance(cls, type) else cls
    if not isinstance(made, TaskKind):
        raise ValueError(f"{kind}: not a TaskKind (subclass scalarize.data.TaskKind)")
    return made


@dataclass(frozen=True)
class Task:
    """One prediction target.

    Attributes:
        name: unique within a benchmark.
        kind: ``multiclass``, ``binary``, ``regression``, a registered or importable kind, or a
            :class:`TaskKind` instance (see the module docstring).
        num_outputs: the head's output size (classes, 1 for binary, target dimension).
        primary_metric: the metric that ranks models (default: the kind's);
            ``higher_is_better`` is its direction.
        options: keyword arguments of the kind's constructor (e.g. an ignore label).
    """

    name: str
    kind: str | TaskKind
    num_outputs: int
    primary_metric: str = field(default="")
    higher_is_better: bool | None = field(default=None)
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        try:
            behaviour = resolve_kind(self.kind, self.options)
        except (ValueError, TypeError) as error:
            raise ValueError(f"task {self.name!r}: {error}") from None
        object.__setattr__(self, "behaviour", behaviour)
        if not self.primary_metric:
            object.__setattr__(self, "primary_metric", behaviour.primary_metric)
        if self.higher_is_better is None:  # the kind's direction of the metric (logloss: lower)
            object.__setattr__(self, "higher_is_better", behaviour.direction(self.primary_metric))

    @property
    def kind_name(self) -> str:
        return self.kind if isinstance(self.kind, str) else type(self.kind).__name__

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.behaviour.metric_names

    def delta_metrics(self) -> list[tuple[str, bool]]:
        """``(metric, higher_is_better)`` of the metrics Δm averages over for this task: the kind's
        ``delta_metrics`` (each in its own direction) unless the task's primary metric was set to
        one the kind does not list, else the primary metric alone."""
        kind = self.behaviour
        if kind.delta_metrics and self.primary_metric in (kind.primary_metric, *kind.delta_metrics):
            return [
                (m, self.higher_is_better if m == self.primary_metric else kind.direction(m))
                for m in kind.delta_metrics
            ]
        return [(self.primary_metric, bool(self.higher_is_better))]

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """The task's training loss (per sample with ``reduction='none'``)."""
        return self.behaviour.loss(output, target, reduction=reduction)

    def accumulator(self) -> MetricAccumulator:
        return self.behaviour.accumulator()

    def check(self, output: Tensor, target: Tensor) -> None:
        """Raises a one-line ``ValueError`` when ``target`` does not fit the head's ``output``.

        The head's width comes first: a head narrower than ``num_outputs`` (2 logits for 4
        classes) cannot score the task, and one wider is refused too: its extra outputs are
        classes (channels) that no target holds, yet argmax may pick them, so the run would train
        and score a different task than the one declared. That is nearly always a head built from
        the wrong count; a head meant to be wider declares it in ``num_outputs``.
        """
        width = self.behaviour.output_width(output)
        if width is not None and width != self.num_outputs:
            raise ValueError(
                f"task {self.name!r} ({self.kind_name}): the model's head gives {width} output(s) per sample "
                f"(output {_shape(output)}) but the task needs {self.num_outputs} (num_outputs); build the head "
                f"with the task's num_outputs"
            )
        problem = self.behaviour.check(output, target)
        if problem:
            raise ValueError(f"task {self.name!r} ({self.kind_name}): {problem}")

    def check_kind(self, output: Tensor, target: Tensor) -> None:
        """The kind's contract on one probe batch that passed :meth:`check`, one-line
        ``ValueError`` otherwise: ``loss(..., reduction='none')`` gives one value per sample (the
        run core averages them, so a scalar there would be divided by the batch size, and a
        stacked sweep could not split it per member); ``accumulator()`` exists, its
        ``compute()`` returns ``{metric: number}``, and the task's primary metric (and the
        metrics Δm averages) are among them, else the table would show "—" for the task.

        An accumulator whose ``update``/``compute`` raises on so small a batch (an AUC of a
        single class) is not judged here: the first evaluation is.
        """
        where = f"task {self.name!r} ({self.kind_name})"
        try:
            per_sample = self.behaviour.loss(output, target, reduction="none")
        except NotImplementedError:
            raise ValueError(
                f"{where}: its kind has no loss(); a TaskKind defines loss(output, target, reduction)"
            ) from None
        if not isinstance(per_sample, Tensor) or tuple(per_sample.shape) != (len(output),):
            got = _shape(per_sample) if isinstance(per_sample, Tensor) else type(per_sample).__name__
            raise ValueError(
                f"{where}: loss(output, target, reduction='none') gave {got} for a batch of "
                f"{len(output)}; it must give one loss per sample, [{len(output)}]"
            )
        try:
            accumulator = self.behaviour.accumulator()
        except NotImplementedError:
            accumulator = None
        missing = [m for m in ("update", "compute", "reset") if not callable(getattr(accumulator, m, None))]
        if missing:
            got = "no accumulator()" if accumulator is None else f"an accumulator without {', '.join(missing)}()"
            raise ValueError(
                f"{where}: its kind has {got}; accumulator() must return a MetricAccumulator "
                "(update(output, target) per batch, compute() -> {metric: number}, reset()), "
                "e.g. scalarize.data.task.MeanOverSamples"
            )
        try:
            accumulator.update(output, target)
            values = accumulator.compute()
        except NotImplementedError:
            raise ValueError(f"{where}: its accumulator's update() or compute() is not implemented") from None
        except Exception:  # noqa: BLE001 - e.g. a metric undefined on two samples: judged at evaluation
            return
        if not isinstance(values, Mapping):
            raise ValueError(
                f"{where}: its accumulator's compute() returned a {type(values).__name__}; it must "
                "return {metric: number}"
            )
        for name, value in values.items():
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{where}: its accumulator's compute() gave {name!r} as a {type(value).__name__}; "
                    "each metric must be a number"
                ) from None
        wanted = [self.primary_metric, *(m for m, _ in self.delta_metrics() if m != self.primary_metric)]
        absent = [m for m in wanted if m not in values]
        if absent:
            what = "primary metric" if absent[0] == self.primary_metric else "Δm metric"
            raise ValueError(
                f"{where}: its {what} {absent[0]!r} is never computed: its accumulator's compute() "
                f"returns {', '.join(map(repr, values)) or 'nothing'}; set primary_metric to one of "
                "them or compute it"
            )
