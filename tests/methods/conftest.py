"""A tiny two-task model and a plain training loop, as a user would write it."""

from __future__ import annotations

import copy

import pytest
import torch
from registered import setting_of
from torch import nn

from scalarize.methods import AFTER_STEP, OWN_OPTIMIZER, Method, StepContext

TASKS = ["a", "b"]


@pytest.fixture(autouse=True)
def _tiny_models_one_thread(one_thread):
    """Every test here uses tiny models (see the root conftest's ``one_thread``)."""


class ToyModel(nn.Module):
    """Trunk Linear+ReLU, two Linear heads."""

    def __init__(self, d_in: int = 4, hidden: int = 8, num_tasks: int = 2) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(hidden, 1) for _ in range(num_tasks)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = self.trunk(x)
        return z, [head(z).squeeze(-1) for head in self.heads]


class Toy:
    """Model, data and optimizer of a two-task regression problem, seeded."""

    def __init__(self, method: Method, lr: float = 0.05, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.model = ToyModel()
        self.x = torch.randn(64, 4, generator=gen)
        a, b = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
        self.ys = [self.x @ a, torch.sin(2 * self.x @ b) + 1.0]
        self.method = method
        self.lr = lr
        if not method.task_names:
            method.setup(TASKS, setting_of(method))
        self.optimizer = self._optimizer()
        self.step_index = 0
        self.epoch_losses: list[torch.Tensor] = []

    def _optimizer(self) -> torch.optim.Optimizer:
        params = [*self.model.parameters(), *self.method.parameters()]
        if OWN_OPTIMIZER in self.method.needs:
            return self.method.build_optimizer(params, self.lr)
        return torch.optim.SGD(params, lr=self.lr)

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        z, preds = self.model(self.x)
        losses = torch.stack([((p - y) ** 2).mean() for p, y in zip(preds, self.ys)])
        return z, losses

    def context(self) -> StepContext:
        z, losses = self.losses()
        return StepContext(
            losses,
            features=z,
            shared_params=list(self.model.trunk.parameters()),
            task_params=[list(h.parameters()) for h in self.model.heads],
            recompute_losses=lambda: self.losses()[1],
            step=self.step_index,
        )

    def step(self, steps_per_epoch: int = 5) -> StepContext:
        """One step of the plain loop: context, method.backward, optimizer.step, hooks."""
        ctx = self.context()
        self.optimizer.zero_grad()
        self.method.backward(ctx)
        self.optimizer.step()
        if AFTER_STEP in self.method.needs:
            self.method.after_step(ctx)
        self.epoch_losses.append(ctx.losses.detach())
        self.step_index += 1
        if self.step_index % steps_per_epoch == 0:
            epoch = self.step_index // steps_per_epoch - 1
            self.method.end_epoch(epoch, torch.stack(self.epoch_losses).mean(dim=0))
            self.epoch_losses = []
        return ctx

    def train(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def clone(self, method: Method) -> Toy:
        """Same model, data and optimizer state, with another method instance."""
        other = copy.copy(self)
        other.model = copy.deepcopy(self.model)
        other.method = method
        other.optimizer = other._optimizer()
        other.optimizer.load_state_dict(self.optimizer.state_dict())
        other.epoch_losses = list(self.epoch_losses)
        return other


@pytest.fixture
def toy():
    """``toy(method, lr=...)`` builds a seeded two-task problem around ``method``."""
    return Toy


def synthetic_context(gradients: torch.Tensor, losses: torch.Tensor | None = None) -> StepContext:
    """A context whose shared Jacobian is exactly ``gradients`` ``[T, n]``: loss_i = g_i · θ + c_i
    at θ = 0 (c_i = 1 unless ``losses`` are given)."""
    theta = nn.Parameter(torch.zeros(gradients.shape[1], dtype=gradients.dtype))
    offsets = torch.ones(gradients.shape[0]) if losses is None else losses
    task_losses = gradients @ theta + offsets.to(gradients.dtype)
    return StepContext(
        task_losses,
        features=None,
        shared_params=[theta],
        task_params=[[] for _ in range(gradients.shape[0])],
    )


@pytest.fixture
def gradient_context():
    """``gradient_context(G)``: a context with shared Jacobian ``G`` (one shared tensor)."""
    return synthetic_context
