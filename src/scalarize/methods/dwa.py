"""Dynamic Weight Average (DWA).

Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.

At epoch ``t`` the batch losses are combined as ``Σ_i w_i(t) L_i`` with

    r_i = L̄_i(t−1) / L̄_i(t−2),        w(t) = T · softmax(r / τ)

where ``L̄_i(e)`` is task i's mean training loss over epoch ``e`` (handed to :meth:`end_epoch` by
the trainer). Until two epochs have ended the weights are all 1. The weights sum to ``T``.

Hyperparameters: ``temperature`` τ (default 2, the paper's value; must be > 0).

Same rule as :class:`torchjd.scalarization.DWA`, whose epoch history lives in Python attributes;
here it is kept in buffers (``history``, ``epochs_seen``) so that it lands in ``state_dict`` and
uses the trainer's epoch means (the equality is tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import check_real, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, Method, Setting
from scalarize.methods.registry import register


@register
class DWA(Method):
    """Weights from the ratio of the last two epochs' mean losses."""

    name = "dwa"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = check_real(self.name, "temperature", temperature, low=0, low_open=True)
        self.register_buffer("history", torch.ones(2, 0))  # rows: epoch t−2, epoch t−1
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.history = torch.ones(2, self.num_tasks)
            self.epochs_seen = torch.zeros((), dtype=torch.long)

    def weights(self) -> Tensor:
        if int(self.epochs_seen) < 2:
            return torch.ones(self.num_tasks, device=self.history.device)
        rates = self.history[1] / self.history[0]
        return self.num_tasks * torch.softmax(rates / self.temperature, dim=0)

    def combine(self, losses: Tensor) -> Tensor:
        self.step_dtype = losses.dtype
        return (self.weights().to(losses) * losses).sum()

    def end_epoch(self, epoch: int, mean_train_losses: Tensor) -> None:
        means = mean_train_losses.detach().to(self.history).flatten()
        self.history = torch.stack([self.history[1], means])
        self.epochs_seen += 1

    def current_weights(self) -> Tensor | None:
        return self.reported(self.weights())
