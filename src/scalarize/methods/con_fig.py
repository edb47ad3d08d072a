"""ConFIG: conflict-free inverse gradients.

Liu, Chu & Thuerey, "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks",
ICLR 2025 (arXiv:2408.11104, 2024; official code: tum-pbs/ConFIG, ``conflictfree/grad_operator.py``).

The update has a positive, equal projection on every unit task gradient ``u_i = g_i / ‖g_i‖``:
its direction solves ``U d̂ = 1`` in the least-squares sense (``d̂ = U⁺ 1``, ``U`` the ``[T, n]``
matrix of unit gradients, Eq. 2), and its length is the sum of the task gradients' projections
on that direction:

    d = (Σ_i g_i · e) e,      e = U⁺1 / ‖U⁺1‖

so ``u_i · d`` is the same for every task, and positive whenever the gradients are linearly
independent (no task's loss increases to first order). Task-specific parameters get their own
gradients.

Computed on the Gramian (``U⁺1 = Uᵀ (UUᵀ)⁺ 1`` with ``UUᵀ = D⁻¹ G Gᵀ D⁻¹``, ``D = diag ‖g_i‖``):
``d = Σ_i w_i g_i`` with ``w = (Σ_j g_j · e) (UUᵀ)⁺1 / (‖U⁺1‖ ‖g_i‖)``, the weights
:meth:`current_weights` reports. Zero gradients are left out (their unit vector is 0, as in the
official code's ``nan_to_num``). Same update as :class:`torchjd.aggregation.ConFIG` (tested),
which takes the pseudo-inverse of the ``[T, n]`` matrix itself.

Hyperparameters: none (the official code's default equal weights of the unit gradients and
projection length; its momentum variant M-ConFIG is not offered).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from scalarize.methods._common import WeightedGradientMethod, gramian
from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT, SCALE_INVARIANT_DIRECTION
from scalarize.methods.registry import register

_PINV_RCOND = 1e-12  # relative cut-off of the unit Gramian's eigenvalues (singular values ~1e-6)


def config_weights(gram: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``d = Σ_i w_i g_i`` from the Gramian ``G Gᵀ``."""
    t = gram.shape[0]
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    scale = float(norms.max()) if t else 0.0
    if not np.isfinite(gram).all() or scale <= 0.0:
        return np.zeros(t)
    inverse_norms = np.where(norms > 1e-12 * scale, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    units = gram * inverse_norms[:, None] * inverse_norms[None, :]  # U Uᵀ
    c = np.linalg.pinv(units, rcond=_PINV_RCOND, hermitian=True) @ np.ones(t)  # (UUᵀ)⁺ 1
    direction_norm2 = float(c @ units @ c)  # ‖Uᵀc‖² = ‖U⁺1‖²
    if direction_norm2 <= 0.0:
        return np.zeros(t)
    raw = c * inverse_norms  # e ∝ Σ_i raw_i g_i
    length = float(np.ones(t) @ gram @ raw) / np.sqrt(direction_norm2)  # Σ_j g_j · e
    direction: np.ndarray = length * raw / np.sqrt(direction_norm2)
    return direction


@register
class ConFIG(WeightedGradientMethod):
    """Equal positive projection on every unit task gradient."""

    name = "config"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING, SCALE_INVARIANT_DIRECTION})

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        return torch.from_numpy(config_weights(gramian(gradients).cpu().numpy()))
