"""Gradient conflict between tasks (or domains), measured on training batches.

For a batch, ``g_i`` is the gradient of objective i's loss on the shared parameters; two
objectives conflict on that batch when ``cos(g_i, g_j) < 0`` (Yu et al. 2020). Royer et al.
(NeurIPS 2023) report that the amount of conflict barely correlates with performance (r = 0.06).

:func:`conflict_statistics` turns per-batch Jacobians into (mean cosine over pairs and batches,
fraction of (pair, batch) with a negative cosine); :class:`ConflictProbe` measures them on a fixed
set of training batches (its own generator: training's RNG is untouched), e.g. after every
evaluation.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from scalarize.data.benchmark import Benchmark
from scalarize.methods.context import StepContext
from scalarize.models.multitask import MultiTaskModel
from scalarize.train.evaluate import task_losses


def pairwise_cosines(jacobian: Tensor) -> Tensor:
    """``[T·(T−1)/2]`` cosines between the rows of ``[T, n]`` (0 where a row is zero)."""
    norms = jacobian.norm(dim=1)
    pairs = list(itertools.combinations(range(jacobian.shape[0]), 2))
    values = []
    for i, j in pairs:
        denominator = norms[i] * norms[j]
        dot = jacobian[i] @ jacobian[j]
        values.append(torch.where(denominator > 0, dot / denominator.clamp_min(1e-30), torch.zeros_like(dot)))
    return torch.stack(values) if values else jacobian.new_zeros(0)


def conflict_statistics(jacobians: list[Tensor]) -> dict[str, float]:
    """``mean_cosine`` and ``negative_fraction`` over every pair of objectives and batch."""
    cosines = torch.cat([pairwise_cosines(j) for j in jacobians])
    if cosines.numel() == 0:
        return {"mean_cosine": float("nan"), "negative_fraction": float("nan")}
    return {"mean_cosine": float(cosines.mean()), "negative_fraction": float((cosines < 0).double().mean())}


class ConflictProbe:
    """Measures gradient conflict of a model on ``batches`` fixed training batches.

    MTL: each batch is drawn from the training split and every task's loss is taken on it. MDL:
    each batch holds ``batch_size`` samples of every domain, and each domain's loss is its mean.
    """

    def __init__(self, benchmark: Benchmark, batches: int = 4, batch_size: int = 128, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.benchmark = benchmark
        self.batches = []
        for _ in range(batches):
            inputs: list[Tensor] = []
            targets: dict[str, list[Tensor]] = {}
            counts: list[int] = []
            for splits in benchmark.domains.values():
                train = splits["train"]
                index = torch.randperm(len(train), generator=generator)[:batch_size]
                batch_inputs, batch_targets = train.batch(index)  # any split: tensors or storage
                inputs.append(batch_inputs)
                for key, value in batch_targets.items():
                    targets.setdefault(key, []).append(value)
                counts.append(len(index))
            self.batches.append(
                (torch.cat(inputs), {k: torch.cat(v) for k, v in targets.items()}, torch.tensor(counts))
            )

    def measure(self, model: MultiTaskModel) -> dict[str, float]:
        """Conflict statistics of ``model`` (in eval mode: batch-norm statistics are untouched)."""
        was_training = model.training
        model.eval()
        jacobians = []
        device = next(model.parameters()).device  # the batches stay where the benchmark is
        try:
            for inputs, targets, counts in self.batches:
                inputs, targets = inputs.to(device), {k: v.to(device) for k, v in targets.items()}
                features, outputs = model(inputs)
                losses = task_losses(self.benchmark, outputs, targets, counts)
                context = StepContext(
                    losses,
                    features=features,
                    shared_params=model.shared_parameters(),
                    task_params=[[] for _ in range(losses.numel())],
                )
                jacobians.append(context.shared_jacobian().detach())
        finally:
            model.train(was_training)
        model.zero_grad(set_to_none=True)
        return conflict_statistics(jacobians)
