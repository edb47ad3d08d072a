"""DSelect-k (Hazimeh et al., NeurIPS 2021, "DSelect-k: Differentiable Selection in the Mixture
of Experts with Applications to Multi-Task Learning"): MMoE with each task's softmax gate
replaced by a DSelect-k gate.

The gate (paper section 3; the official code, google-research ``dselect_k_moe``): ``k``
single-expert selectors over ``n = 2^m`` experts. Selector ``i`` holds ``m`` logits ``z_i``;
with the **smooth-step** ``S(t) = 0`` for ``t ≤ -γ/2``, ``1`` for ``t ≥ γ/2``, and
``-2t³/γ³ + 3t/(2γ) + 1/2`` between, it weights expert ``j`` (binary code ``b_j``, most
significant bit first) by ``r_i(j) = Π_l (S(z_il) if b_jl else 1 - S(z_il))``; the selectors are
mixed by ``softmax(α)``: ``weights = Σ_i softmax(α)_i r_i``. ``routing: per_example`` (default,
as MMoE's gates and LibMTL's port) computes ``z`` and ``α`` by linear maps of the embedded
input; ``routing: static`` holds them as parameters (the paper's task-only gate). Defaults from
the official code: ``gamma`` 1, ``z`` initialised uniform in ``±γ/100``, ``α`` uniform in
``±0.05`` (Keras' ``RandomUniform``); ``k`` 2, ``experts`` 8 and the sizes as :mod:`mmoe` are this
library's.

Left out: the official code's two extra losses. Its entropy regulariser (optional there too)
and, for ``n`` not a power of 2, a penalty ``Σ 1/Σ_j r_i(j)`` that keeps selectors off the
unreachable codes: scalarize's loss contract is one loss per task, from that task's output and
target, so a model-level loss has no place. Hence ``experts`` must be a power of 2 here (every
code reaches an expert, the penalty is then not needed).

Representation, shared and task parameters: as MMoE (``Z = [x ‖ expert outputs]``; the
embedding and the experts are shared; each task's gate and tower are its own).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from scalarize.data.features import FeatureSchema
from scalarize.data.task import Task
from scalarize.models.embedding import DEFAULT_DIM, count
from scalarize.models.mmoe import moe_model
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import ModelError, register_model

ROUTINGS = ("per_example", "static")


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """The cubic smooth-step: 0 below ``-γ/2``, 1 above ``γ/2``, ``-2t³/γ³ + 3t/(2γ) + 1/2`` between."""
    cubic = -2 * t**3 / gamma**3 + 3 * t / (2 * gamma) + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


def binary_codes(n: int) -> Tensor:
    """``[n, log2 n]`` booleans: row ``j`` is ``j`` in binary, most significant bit first."""
    bits = max(1, math.ceil(math.log2(n)))
    return torch.tensor([[(j >> (bits - 1 - b)) & 1 for b in range(bits)] for j in range(n)], dtype=torch.bool)


def selector_outputs(z: Tensor, codes: Tensor, gamma: float) -> Tensor:
    """``z [..., k, m]`` → ``[..., k, n]``: each single-expert selector's weights."""
    s = smooth_step(z, gamma).unsqueeze(-2)  # [..., k, 1, m]
    return torch.where(codes, s, 1 - s).prod(-1)


class StaticLogits(nn.Module):
    """Task-only routing: ``z [k, m]`` and ``α [k]`` are parameters, the same for every sample."""

    def __init__(self, k: int, m: int, gamma: float) -> None:
        super().__init__()
        self.z = nn.Parameter(torch.empty(k, m).uniform_(-gamma / 100, gamma / 100))
        self.alpha = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lead = x.shape[:-1]
        return self.z.expand(*lead, *self.z.shape), self.alpha.expand(*lead, *self.alpha.shape)


class ExampleLogits(nn.Module):
    """Per-example routing: ``z`` and ``α`` are linear maps of the gate input."""

    def __init__(self, size: int, k: int, m: int, gamma: float) -> None:
        super().__init__()
        self.k, self.m = k, m
        self.z, self.alpha = nn.Linear(size, k * m), nn.Linear(size, k)
        for layer, bound in ((self.z, gamma / 100), (self.alpha, 0.05)):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.z(x).reshape(*x.shape[:-1], self.k, self.m), self.alpha(x)


class DSelectKGate(nn.Module):
    """A DSelect-k gate over ``n`` experts: ``x [..., size]`` → weights ``[..., n]``."""

    codes: Tensor

    def __init__(self, size: int, n: int, k: int = 2, gamma: float = 1.0, routing: str = "per_example") -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("codes", binary_codes(n), persistent=False)
        m = int(self.codes.shape[1])
        self.logits = StaticLogits(k, m, gamma) if routing == "static" else ExampleLogits(size, k, m, gamma)

    def forward(self, x: Tensor) -> Tensor:
        z, alpha = self.logits(x)
        selectors = selector_outputs(z, self.codes, self.gamma)  # [..., k, n]
        weights: Tensor = (alpha.softmax(-1).unsqueeze(-1) * selectors).sum(-2)
        return weights


def dselect_k(
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    features: FeatureSchema | None = None,
    embedding_dim: int | str = DEFAULT_DIM,
    experts: int = 8,
    k: int = 2,
    gamma: float = 1.0,
    routing: str = "per_example",
    expert: Sequence[int] = (64,),
    tower: Sequence[int] = (32,),
) -> MultiTaskModel:
    """MMoE with DSelect-k gates (see the module docstring)."""
    n = count("experts", experts, minimum=2)
    if n & (n - 1):
        raise ModelError(f"model.options.experts: dselect_k needs a power of 2 (every binary code an expert), got {n}")
    count("k", k)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ModelError(f"model.options.gamma: a number > 0, got {gamma!r}")
    if routing not in ROUTINGS:
        raise ModelError(f"model.options.routing: {routing!r}; allowed: {', '.join(ROUTINGS)}")
    return moe_model(
        input_shape,
        tasks,
        width,
        features,
        embedding_dim,
        n,
        expert,
        tower,
        DSelectKGate,
        k=k,
        gamma=float(gamma),
        routing=routing,
    )


register_model("dselect_k", dselect_k)
