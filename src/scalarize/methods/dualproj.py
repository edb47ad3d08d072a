"""DualProj: the mean gradient projected onto the dual cone of the task gradients.

Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024 (arXiv:2406.16232),
torchjd's ``DualProj``; the projection is Equation 11 of Lopez-Paz & Ranzato, "Gradient Episodic
Memory for Continual Learning", NeurIPS 2017.

The average gradient ``ḡ = (1/T) Σ_i g_i`` is projected onto the dual cone of the task gradients
``{x : g_j · x ≥ 0 for all j}``, the set of directions that increase no loss to first order:

    d = argmin_{x: G x ≥ 0} ‖x − ḡ‖² = Gᵀ v,    v = argmin_{v ≥ 1/T} vᵀ (G Gᵀ) v

so ``d = ḡ`` when ``ḡ`` conflicts with no task, and otherwise the closest direction that does
not. (UPGrad, ``upgrad``, projects every ``g_i`` and averages the projections instead.)
Task-specific parameters get their own gradients.

Hyperparameters: ``norm_eps`` and ``reg_eps`` (1e-4 each): the Gramian is divided by its trace
and ``reg_eps · I`` is added before solving, as in torchjd.

Backed by :class:`torchjd.aggregation.DualProjWeighting`, with the projection solved by
``upgrad``'s exact active-set :class:`~scalarize.methods.upgrad.NNQPProjector` (torchjd's default
projector needs the optional quadprog/qpsolvers packages).
"""

from __future__ import annotations

from torchjd.aggregation import DualProjWeighting

from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT
from scalarize.methods.registry import register
from scalarize.methods.upgrad import DualConeMethod


@register
class DualProj(DualConeMethod):
    """Mean gradient projected onto the dual cone of the task gradients."""

    name = "dualproj"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING})
    weighting_class = DualProjWeighting
