"""CAGrad: conflict-averse gradient descent.

Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021 (Algorithm 1).

With ``g_0 = mean_i g_i``, the update maximises the worst local improvement within a ball
around the average gradient:

    d* = argmax_{‖d − g_0‖ ≤ c ‖g_0‖}  min_i g_i · d

solved through its dual over the simplex,

    w* = argmin_{w ∈ Δ}  g_wᵀ g_0 + c ‖g_0‖ ‖g_w‖,      g_w = Σ_i w_i g_i,
    d* = g_0 + (c ‖g_0‖ / ‖g_w*‖) g_w*

and divided by ``1 + c²`` (``rescale=1``, the official code's default), ``1 + c``
(``rescale=2``) or not at all (``rescale=0``). ``c = 0`` gives the plain mean. When ``g_w*`` is
~0 (a Pareto-stationary point) the update is 0, as in torchjd. Task-specific parameters get
their own gradients.

Hyperparameters: ``c`` in [0, 1) (default 0.4), ``rescale`` (0 | 1 | 2, default 1).

Source of ``c``: the official run scripts of the paper's experiments (Cranial-XIX/CAGrad) use
c = 0.4 on NYUv2 (``nyuv2/run.sh``) and on Cityscapes (``cityscapes/run.sh``, which also runs
0.6), 0.9 on Metaworld MT10 and 0.5 on MT50 (``mtrl/mtrl_files/run.sh``); FAMO's official code
(same first author) defaults to 0.4 too. LibMTL's default ``calpha`` is 0.5. The default here is
0.4, the value of the paper's image benchmarks (the closest to the dense multi-task problems
this library targets); set 0.5 to match LibMTL's numbers.

Same rule as :class:`torchjd.aggregation.CAGradWeighting`, which needs cvxpy (not a dependency
here); the small convex problem over the simplex is solved in float64 by projected gradient
descent with Barzilai–Borwein steps and an Armijo line search on the Gramian ``G Gᵀ``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from scalarize.methods._common import WeightedGradientMethod, check_choice, check_real, gramian
from scalarize.methods.base import PERMUTATION_EQUIVARIANT
from scalarize.methods.registry import register

_SMOOTH = 1e-12  # added under the square root of ‖g_w‖², the Gramian being trace-normalised
_PARETO_EPS = 1e-8


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ks = np.arange(1, v.size + 1)
    rho = np.nonzero(u - css / ks > 0)[0][-1]
    projected: np.ndarray = np.maximum(v - css[rho] / (rho + 1), 0.0)
    return projected


def minimise_on_simplex(
    fun: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, max_iters: int = 500
) -> np.ndarray:
    """Projected gradient descent with Barzilai–Borwein steps and Armijo backtracking."""
    x, fx, gx = x0, fun(x0), grad(x0)
    step = 1.0
    for _ in range(max_iters):
        while True:
            x_new = project_simplex(x - step * gx)
            f_new = fun(x_new)
            if f_new <= fx + 1e-4 * gx @ (x_new - x) or step < 1e-14:
                break
            step *= 0.5
        dx = x_new - x
        if np.abs(dx).max() < 1e-13:
            return x_new
        g_new = grad(x_new)
        dg = g_new - gx
        curvature = dx @ dg
        step = float(np.clip(dx @ dx / curvature, 1e-10, 1e10)) if curvature > 0 else 1.0
        x, fx, gx = x_new, f_new, g_new
    return x


def cagrad_weights(gram: np.ndarray, c: float, rescale: int) -> np.ndarray:
    """Weights ``λ`` with ``d* = Σ_i λ_i g_i`` (rescaled), from the Gramian."""
    t = gram.shape[0]
    mean = np.full(t, 1.0 / t)
    trace = float(np.trace(gram))
    if trace <= 0.0 or c == 0.0:
        return mean
    a_mat = gram / trace
    a_vec = a_mat @ mean
    k = c * float(np.sqrt(max(mean @ a_vec, 0.0)))

    def fun(w: np.ndarray) -> float:
        return float(w @ a_vec + k * np.sqrt(w @ a_mat @ w + _SMOOTH))

    def grad(w: np.ndarray) -> np.ndarray:
        gradient: np.ndarray = a_vec + k * (a_mat @ w) / np.sqrt(w @ a_mat @ w + _SMOOTH)
        return gradient

    w = minimise_on_simplex(fun, grad, mean)
    gw_norm = float(np.sqrt(max(w @ a_mat @ w, 0.0)))
    if gw_norm < _PARETO_EPS:
        return np.zeros(t)
    weights = mean + (k / gw_norm) * w
    return weights / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]


@register
class CAGrad(WeightedGradientMethod):
    """Best worst-case improvement within a ball around the mean gradient."""

    name = "cagrad"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, c: float = 0.4, rescale: int = 1) -> None:
        super().__init__()
        self.c = check_real(self.name, "c", c, low=0, high=1, high_open=True)
        self.rescale = check_choice(self.name, "rescale", rescale, (0, 1, 2))

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        gram = gramian(gradients).cpu().numpy()
        return torch.from_numpy(cagrad_weights(gram, self.c, self.rescale))
