"""STCH: smooth Tchebycheff scalarization.

Lin, Zhang, Yang, Liu, Wang & Zhang, "Smooth Tchebycheff Scalarization for Multi-Objective
Optimization", ICML 2024 (official code: Xi-L/STCH, ``STCH_MTL/LibMTL/weighting/STCH.py``).

The Tchebycheff scalarization ``max_i λ_i (f_i − z_i*)`` reaches every Pareto solution but is not
smooth; STCH replaces the max by its log-sum-exp smoothing with temperature μ,

    g_μ(f | λ) = μ · log Σ_i exp(λ_i (f_i − z_i*) / μ),

which tends to the max as μ → 0. For multi-task learning the authors' code (which produced the
paper's MTL results) applies it to log-losses against a reference point measured in a warm-up:

* warm-up, the first ``warmup_epochs`` epochs: the model minimises ``Σ_i log L_i`` (effective
  loss weights ``1 / L_i``); the mean training losses ``ν`` of the last warm-up epoch (handed to
  :meth:`end_epoch` by the trainer) become the reference point;
* afterwards: ``L = T · μ · log Σ_i exp(log(L_i / ν_i) / μ)``, i.e. ``T ·`` :class:`torchjd.
  scalarization.STCH` ``(μ, λ = 1, z* = log ν)`` of the log-losses, whose gradient weighs each
  task by ``T · softmax(log(L/ν)/μ)_i / L_i`` (what :meth:`current_weights` reports): the task
  furthest above its reference gets most of the weight.

``warmup_epochs = 0`` skips the warm-up and uses ``ν = 1`` (STCH of the plain log-losses).

Hyperparameters: ``mu`` μ > 0 (default 1.0, the official code's and LibMTL's ``STCH_mu``; the
paper evaluates μ ∈ {0.01, 0.1, 0.5, 1}), ``warmup_epochs`` ≥ 0 (default 5). The official code's
``STCH_warmup_epoch = 4`` counts from 0 and trains on ``Σ log L_i`` for epochs 0–4, averaging the
losses of epoch 4 as the reference: five warm-up epochs, the default here. The preference λ is 1
for every task, as in that code (the paper's general form allows any λ on the simplex).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchjd.scalarization import STCH as TorchJDSTCH

from scalarize.methods._common import check_int, check_real, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, Method, Setting, defined
from scalarize.methods.registry import register

_LOG_EPS = 1e-20  # the official code's log(L + 1e-20)


@register
class STCH(Method):
    """Smooth Tchebycheff scalarization of log-losses against a warm-up reference."""

    name = "stch"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, mu: float = 1.0, warmup_epochs: int = 5) -> None:
        super().__init__()
        self.mu = check_real(self.name, "mu", mu, low=0, low_open=True)
        self.warmup_epochs = check_int(self.name, "warmup_epochs", warmup_epochs, low=0)
        self.register_buffer("reference", torch.ones(0))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.reference = torch.ones(self.num_tasks)
            self.epochs_seen = torch.zeros((), dtype=torch.long)

    @property
    def warming_up(self) -> bool:
        return int(self.epochs_seen) < self.warmup_epochs

    def combine(self, losses: Tensor) -> Tensor:
        t = losses.numel()
        if self.warming_up:
            self.last_weights = 1.0 / (losses.detach() + _LOG_EPS)
            return torch.log(losses + _LOG_EPS).sum()
        logs = torch.log(losses / self.reference.to(losses) + _LOG_EPS)
        scalarizer = TorchJDSTCH(self.mu, weights=torch.ones_like(logs))
        self.last_weights = (
            t * torch.softmax(logs.detach() / self.mu, dim=0) / (losses.detach() + _LOG_EPS * self.reference.to(losses))
        )
        return t * scalarizer(logs)

    def end_epoch(self, epoch: int, mean_train_losses: Tensor) -> None:
        self.epochs_seen += 1
        if int(self.epochs_seen) == self.warmup_epochs:
            self.reference = mean_train_losses.detach().to(self.reference).flatten().clone()

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
