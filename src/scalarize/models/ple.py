"""CGC and PLE (Tang et al., RecSys 2020, "Progressive Layered Extraction (PLE): A Novel
Multi-Task Learning (MTL) Model for Personalized Recommendations").

**CGC** (Customized Gate Control, paper eq. 1-3): ``shared_experts`` experts shared by all
tasks and ``task_experts`` experts per task, all on the embedded input ``x``; task ``k``'s gate
``softmax(W_k x)`` (linear, no bias) mixes the shared experts and task ``k``'s own; a tower per
task. **PLE** (eq. 4-5) stacks ``levels`` such extraction networks: at every level but the last,
a **shared gate** on the shared input mixes *all* experts of the level (every task's and the
shared ones) into the next level's shared input, and each task gate's mixture is that task's
next input; the last level is a CGC (no shared gate). ``levels: 1`` is CGC. Defaults (this
library's, scaled by ``width``; the paper tunes them): ``shared_experts`` 2, ``task_experts`` 1,
``expert`` hidden sizes (64,), ``tower`` (32,), ``levels`` 2 for ``ple``, ``embedding_dim`` 8.

Representation (what the last level's task heads read):

* CGC: ``Z = [x ‖ shared expert outputs]``; every path from the embedding and the shared experts
  to an output goes through ``Z``. Shared parameters: the embedding and the shared experts; task
  parameters: task ``k``'s own experts, gate and tower.
* PLE: ``Z = [g_1 ‖ … ‖ g_K ‖ last-level shared expert outputs]``, with ``g_k`` task ``k``'s input
  to the last level (its gate's mixture at level ``levels-1``). Shared parameters: everything
  below the last level's task parts (the embedding, all lower-level experts and gates, the
  last-level shared experts): every task's loss reaches them through the shared gates, except
  task ``k``'s gate at level ``levels-1``, which only task ``k``'s loss reaches (its rows of
  other tasks' Jacobians are zero). Task parameters: task ``k``'s last-level experts, gate, tower.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, FeatureEmbedding, count, hidden_sizes, mlp, schema_for
from scalarize.models.experts import Experts, GatedTower, mix, softmax_gate
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import register_model


class ExtractionLevel(nn.Module):
    """One PLE extraction network below the last: task inputs and the shared input → the task
    gates' mixtures and the shared gate's mixture."""

    def __init__(self, tasks: int, size: int, shared: int, own: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.shared = Experts(shared, size, hidden)
        self.own = nn.ModuleList(Experts(own, size, hidden) for _ in range(tasks))
        self.gates = nn.ModuleList(softmax_gate(size, shared + own) for _ in range(tasks))
        self.shared_gate = softmax_gate(size, shared + tasks * own)
        self.out = self.shared.out

    def forward(self, inputs: list[Tensor], shared_input: Tensor) -> tuple[list[Tensor], Tensor]:
        shared = self.shared(shared_input)
        own = [experts(x) for experts, x in zip(self.own, inputs, strict=True)]
        outputs = [
            mix(gate(x), torch.cat([shared, e], dim=-2)) for gate, x, e in zip(self.gates, inputs, own, strict=True)
        ]
        return outputs, mix(self.shared_gate(shared_input), torch.cat([shared, *own], dim=-2))


class ExtractionTrunk(nn.Module):
    """``rows → Z``: the embedding, the levels below the last, the last level's shared experts
    (see the module docstring for ``Z``'s layout)."""

    def __init__(self, embedding: FeatureEmbedding, tasks: int, levels: list[ExtractionLevel], last: Experts) -> None:
        super().__init__()
        self.embedding, self.levels, self.last = embedding, nn.ModuleList(levels), last
        self.tasks = tasks

    def forward(self, rows: Tensor) -> Tensor:
        x = self.embedding(rows)
        if not len(self.levels):  # CGC
            return torch.cat([x, self.last(x).flatten(-2)], dim=-1)
        inputs, shared = [x] * self.tasks, x
        for level in self.levels:
            inputs, shared = level(inputs, shared)
        return torch.cat([*inputs, self.last(shared).flatten(-2)], dim=-1)


def extraction_model(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float,
    features: FeatureSchema | None,
    embedding_dim: int | str,
    levels: int,
    shared_experts: int,
    task_experts: int,
    expert: Sequence[int],
    tower: Sequence[int],
) -> MultiTaskModel:
    """CGC (``levels`` 1) or PLE (see the module docstring)."""
    embedding = FeatureEmbedding(schema_for(input_shape, features), embedding_dim)
    levels, shared_n = count("levels", levels), count("shared_experts", shared_experts)
    own_n = count("task_experts", task_experts)
    hidden, tower_sizes = hidden_sizes("expert", expert, width), hidden_sizes("tower", tower, width)
    k, d = len(tasks), embedding.size
    lower = [ExtractionLevel(k, d if i == 0 else hidden[-1], shared_n, own_n, hidden) for i in range(levels - 1)]
    size = d if levels == 1 else hidden[-1]  # the last level's input width
    last = Experts(shared_n, size, hidden)
    inputs = 1 if levels == 1 else k
    shared = (inputs * size, inputs * size + shared_n * last.out)

    def head(i: int, task: Task) -> GatedTower:
        start = 0 if levels == 1 else i * size
        own = Experts(own_n, size, hidden)
        return GatedTower(
            (start, start + size),
            shared,
            last.out,
            softmax_gate(size, shared_n + own_n),
            mlp(last.out, tower_sizes, task.num_outputs),
            own,
        )

    trunk = ExtractionTrunk(embedding, k, lower, last)
    return MultiTaskModel(trunk, {t.name: head(i, t) for i, t in enumerate(tasks)})


def cgc(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    shared_experts: int = 2,
    task_experts: int = 1,
    expert: Sequence[int] = (64,),
    tower: Sequence[int] = (32,),
) -> MultiTaskModel:
    """CGC, one extraction level (see the module docstring)."""
    return extraction_model(
        input_shape, tasks, width, features, embedding_dim, 1, shared_experts, task_experts, expert, tower
    )


def ple(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    levels: int = 2,
    shared_experts: int = 2,
    task_experts: int = 1,
    expert: Sequence[int] = (64,),
    tower: Sequence[int] = (32,),
) -> MultiTaskModel:
    """PLE, ``levels`` extraction levels (see the module docstring)."""
    return extraction_model(
        input_shape, tasks, width, features, embedding_dim, levels, shared_experts, task_experts, expert, tower
    )


register_model("cgc", cgc)
register_model("ple", ple)
