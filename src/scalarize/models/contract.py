"""The model contract: what the run core needs from a model, and adapters for what users bring.

A model maps a batch to ``(representation, {task: output})``: the representation is what the
methods on the shared representation (MGDA-UB, GradNorm) and per-task gradients go through. The
run core also asks for the **shared parameters** (every task's loss reaches them) and the
**task parameters** (per task, those only its loss reaches).

* :class:`MultiTaskModel` (a trunk and a dict of heads) answers all of it, and also offers
  :meth:`MultiTaskModel.forward_with_head_inputs` (every task's gradient on the representation
  from one backward pass through the heads);
* a ``(trunk, {task: head})`` pair becomes a :class:`MultiTaskModel`;
* any other ``nn.Module`` whose forward returns ``(features, {task: output})`` is used as it is
  when it has ``shared_parameters()`` and ``task_parameters()``; otherwise
  :class:`ModuleModel` wraps it and finds the two groups on the first batch it sees, from the
  autograd graph: parameters the representation depends on are shared, those only task i's
  output depends on are task i's.

Before anything is written, :func:`probe` holds a model and its tasks to all of this on two
training samples: what ``forward`` returns (:func:`split_result`), a target for every task, each
head's width against its task's ``num_outputs``, and the task kind's own contract (a per-sample
loss, an accumulator computing the primary metric; :meth:`Task.check_kind`). Each break is one
line naming what is wrong and what the contract is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scalarize.data.task import Task
from scalarize.models.multitask import MultiTaskModel

CONTRACT = "(features, {task: output})"


def split_result(result: Any, tasks: Sequence[str] | None = None) -> tuple[Any, Mapping[str, Any]]:
    """``(features, outputs)`` of what a model's forward returned, or a one-line ``ValueError``
    saying what it returned instead and what the contract is."""
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], Mapping):
        return result[0], result[1]
    if isinstance(result, Mapping):
        got = f"only {{task: output}} (a dict of {', '.join(map(str, result)) or 'nothing'})"
        fix = ": return the representation the heads read as well, `return features, outputs`"
    elif isinstance(result, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in result[:4]) + (", ..." if len(result) > 4 else "")
        got = f"a {type(result).__name__} of {len(result)} value(s) ({kinds})"
        fix = ", the second a dict keyed by task name" if len(result) == 2 else ""
    else:
        got, fix = f"a {type(result).__name__}", ""
    names = f" (tasks: {', '.join(tasks)})" if tasks else ""
    raise ValueError(f"the model's forward returned {got}; the contract is {CONTRACT}{names}{fix}")


class ModuleModel(nn.Module):
    """A user's module returning ``(features, {task: output})``, with its parameter groups found
    from the autograd graph of its first forward pass (see the module docstring)."""

    def __init__(self, module: nn.Module, task_names: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.task_names = list(task_names)
        self._groups: tuple[list[nn.Parameter], list[list[nn.Parameter]]] | None = None

    def forward(self, inputs: Any) -> tuple[Tensor, dict[str, Tensor]]:
        features, outputs = split_result(self.module(inputs), self.task_names)
        if not isinstance(features, Tensor):
            raise ValueError(
                f"the model's forward returned a {type(features).__name__} as its representation; the "
                f"contract is {CONTRACT} with the representation a Tensor"
            )
        if self._groups is None and torch.is_grad_enabled() and features.requires_grad:
            self._groups = self._find_groups(features, outputs)
        return features, outputs

    def _find_groups(self, features: Tensor, outputs: Mapping[str, Tensor]):
        params = [p for p in self.module.parameters() if p.requires_grad]

        def reached(tensor: Tensor) -> set[int]:
            grads = torch.autograd.grad(tensor.float().sum(), params, retain_graph=True, allow_unused=True)
            return {i for i, g in enumerate(grads) if g is not None}

        shared = reached(features)
        per_task = [sorted(reached(outputs[name]) - shared) for name in self.task_names]
        return [params[i] for i in sorted(shared)], [[params[i] for i in group] for group in per_task]

    def shared_parameters(self) -> list[nn.Parameter]:
        if self._groups is None:  # before any batch: every parameter may be shared
            return [p for p in self.module.parameters() if p.requires_grad]
        return self._groups[0]

    def task_parameters(self) -> list[list[nn.Parameter]]:
        if self._groups is None:
            return [[] for _ in self.task_names]
        return self._groups[1]


def as_multitask(model: Any, tasks: Sequence[Task]) -> nn.Module:
    """``model`` as a module that satisfies the contract, or a one-line ``ValueError``."""
    names = [t.name for t in tasks]
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], Mapping):
        trunk, heads = model
        model = MultiTaskModel(trunk, dict(heads))
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"a builder must return an nn.Module or a (trunk, {{task: head}}) pair, got {type(model).__name__}"
        )
    if isinstance(model, MultiTaskModel):
        missing = [n for n in names if n not in model.heads]
        if missing:
            raise ValueError(f"no head for task(s) {missing}; the heads are {list(model.heads)}")
        return model
    if callable(getattr(model, "shared_parameters", None)) and callable(getattr(model, "task_parameters", None)):
        return model
    return ModuleModel(model, names)


def probe(model: nn.Module, inputs: Any, tasks: Sequence[Task], targets: Mapping[str, Tensor]) -> None:
    """One forward pass on a small batch: the outputs are ``(features, {task: output})`` with
    every task, the data has a target for every task, each head has its task's width and each
    target fits its head's output (:meth:`Task.check`), each task's kind keeps its contract on
    the batch (:meth:`Task.check_kind`), and a :class:`ModuleModel` learns its parameter groups.
    Raises a one-line ``ValueError``.

    In eval mode, so that batch-norm statistics are untouched and no random number is drawn.
    """
    was_training = model.training
    model.eval()
    try:
        result = model(inputs)
    finally:
        model.train(was_training)
    names = [t.name for t in tasks]
    _, outputs = split_result(result, names)
    missing = [n for n in names if n not in outputs]
    if missing:
        raise ValueError(
            f"the model's outputs lack task(s) {missing}; it returned {list(outputs)} (the contract is "
            f"{CONTRACT}, keyed by the task names {names})"
        )
    absent = [n for n in names if n not in targets]
    if absent:
        raise ValueError(
            f"the training data has no target for task(s) {absent} (its targets are {list(targets)}); "
            f"a Dataset's item is (input, {{task: target}}) keyed by the task names {names}"
        )
    for task in tasks:
        output = outputs[task.name]
        if not isinstance(output, Tensor):
            raise ValueError(
                f"the model's output for task {task.name!r} is a {type(output).__name__}; the contract is "
                f"{CONTRACT} with each output a Tensor"
            )
        task.check(output.detach(), targets[task.name])
        task.check_kind(output.detach(), targets[task.name])
    model.zero_grad(set_to_none=True)


def supports_head_inputs(model: nn.Module, tasks: Sequence[Task]) -> bool:
    """Whether one backward pass through the heads can give every task's gradient on the
    representation (hard parameter sharing, heads in the tasks' order)."""
    heads = getattr(model, "heads", None)
    return (
        callable(getattr(model, "forward_with_head_inputs", None))
        and heads is not None
        and list(heads) == [t.name for t in tasks]
    )
