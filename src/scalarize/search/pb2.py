"""PB2 explore for the local engine: new task weights from a time-varying GP bandit.

PB2 (Parker-Holder, Nguyen & Roberts, NeurIPS 2020, "Provably Efficient Online Hyperparameter
Optimization with Population-Based Bandits") keeps PBT's exploit and replaces the random explore
by GP-UCB with a time-varying kernel (TV-GP-UCB, Bogunovic et al. 2016). Data: one row per
member and interval, ``x = (t, w)`` (the sync at which the interval ended, the weights used)
and ``y`` = the fitness improvement over the interval. Kernel, as Ray Tune's ``TV_SquaredExp``::

    k((t, w), (t', w')) = c · (1 − ε)^{|t − t'| / 2} · exp(−‖w − w'‖² / (2 l²))  (+ white noise)

with ``c ∈ [1e-2, 1e2]`` (from 1), ``ε ∈ [1e-4, 0.5]`` (from 0.1), ``l ∈ [0.02, 10]`` (from 0.3)
and the noise ``∈ [1e-6, 1]`` (from 0.1) fitted by maximum marginal likelihood on the real data
(scikit-learn's ``GaussianProcessRegressor``; only the kernel is written here). ``y`` is
standardised and clipped to [−2, 2] (:func:`standardise`, as Ray Tune does). Each new weight
vector maximises
``UCB = μ(now, w) + κ σ(now, w)`` over ``candidates`` Dirichlet(1) points on the simplex,
``κ`` = :func:`ucb_kappa`. Several picks at one sync are made diverse as in GP-BUCB (Desautels
et al. 2014): each pick, and every ``pending`` weight vector (members that keep training), is
added at time ``now`` with its predicted mean as a hallucinated observation and the GP refitted
with the fitted kernel kept, shrinking σ there; μ stays that of the real data. Measure ``t`` in
sync indices so that ε is a forgetting rate per sync.

The policy's exploit is unchanged: replace the weights of the exploited
:class:`~scalarize.search.pbt.Decision` with these (``dataclasses.replace``). The lr is not
modelled. Deterministic given the inputs and ``rng``. Imports scikit-learn (not torch).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Hyperparameter, Kernel, WhiteKernel

__all__ = ["pb2_explore", "standardise", "ucb_kappa"]


class TimeVaryingRBF(Kernel):  # type: ignore[misc]  # sklearn ships no type information
    """``(1 − ε)^{|t − t'|/2} · exp(−‖w − w'‖² / (2 l²))``; column 0 is time, the rest ``w``."""

    def __init__(
        self,
        epsilon: float = 0.1,
        length_scale: float = 0.3,
        epsilon_bounds: tuple[float, float] = (1e-4, 0.5),
        length_scale_bounds: tuple[float, float] = (0.02, 10.0),
    ) -> None:
        self.epsilon = epsilon
        self.length_scale = length_scale
        self.epsilon_bounds = epsilon_bounds
        self.length_scale_bounds = length_scale_bounds

    @property
    def hyperparameter_epsilon(self) -> Hyperparameter:
        return Hyperparameter("epsilon", "numeric", self.epsilon_bounds)

    @property
    def hyperparameter_length_scale(self) -> Hyperparameter:
        return Hyperparameter("length_scale", "numeric", self.length_scale_bounds)

    def __call__(
        self, X: ArrayLike, Y: ArrayLike | None = None, eval_gradient: bool = False
    ) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.float64]]:
        X = np.asarray(X, dtype=np.float64)
        Y = X if Y is None else np.asarray(Y, dtype=np.float64)
        half_dt = np.abs(X[:, :1] - Y[:, :1].T) / 2
        r2 = ((X[:, None, 1:] - Y[None, :, 1:]) ** 2).sum(-1) / self.length_scale**2
        eps = self.epsilon
        time, se = (1 - eps) ** half_dt, np.exp(-r2 / 2)
        K: NDArray[np.float64] = time * se
        if not eval_gradient:
            return K
        # d/d log ε and d/d log l, in the order of dir(): epsilon, length_scale
        d_eps = -eps * half_dt * (1 - eps) ** (half_dt - 1) * se
        gradient: NDArray[np.float64] = np.stack([d_eps, K * r2], axis=-1)
        return K, gradient

    def diag(self, X: ArrayLike) -> NDArray[np.float64]:
        return np.ones(np.asarray(X).shape[0])

    def is_stationary(self) -> bool:
        return True


def ucb_kappa(n: int) -> float:
    """The UCB exploration weight for ``n`` observations: ``sqrt(0.2 · log(0.4 · max(n, 5)))``
    (Ray Tune's PB2 constants, with ``n`` floored at 5 so that κ > 0)."""
    return float(np.sqrt(0.2 * np.log(0.4 * max(n, 5))))


def standardise(improvements: Sequence[float] | np.ndarray) -> NDArray[np.float64]:
    """Improvements as the GP sees them: ``(y − mean) / (std + 1e-8)`` clipped to [−2, 2]
    (Ray Tune's PB2), so that the picks do not depend on the fitness scale and one outlier
    weighs at most two standard deviations."""
    y = np.asarray(improvements, dtype=np.float64)
    clipped: NDArray[np.float64] = np.clip((y - y.mean()) / (y.std() + 1e-8), -2, 2)
    return clipped


def _fit(X: NDArray[np.float64], y: NDArray[np.float64], kernel: Kernel, optimize: bool) -> GaussianProcessRegressor:
    gp = GaussianProcessRegressor(kernel, optimizer="fmin_l_bfgs_b" if optimize else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gp.fit(X, y)


def pb2_explore(
    times: Sequence[float] | np.ndarray,
    weights: Sequence[Sequence[float]] | np.ndarray,
    improvements: Sequence[float] | np.ndarray,
    now: float,
    count: int,
    rng: np.random.Generator | int | Sequence[int] | None,
    *,
    pending: Sequence[Sequence[float]] | np.ndarray | None = None,
    candidates: int = 512,
    weight_floor: float = 1e-6,
) -> NDArray[np.float64]:
    """``count`` new weight vectors ``[count, k]`` on the simplex (see the module docstring).

    ``times`` ``[n]``, ``weights`` ``[n, k]``, ``improvements`` ``[n]`` (rows with a non-finite
    improvement are dropped); ``now``: the current sync; ``rng``: a numpy Generator or a seed;
    ``pending`` ``[m, k]``: weights that keep training. With fewer than 2 usable rows the
    picks are plain Dirichlet(1) draws. Weights are clipped at ``weight_floor``, renormalised.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    y = np.asarray(improvements, dtype=np.float64).reshape(-1)
    if w.ndim != 2 or w.shape[1] < 1 or not (len(t) == len(y) == len(w)):
        raise ValueError(
            f"pb2_explore: need times [n], weights [n, k], improvements [n]; got {t.shape}, {w.shape}, {y.shape}"
        )
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"pb2_explore: count must be a positive int; got {count!r}")
    k = w.shape[1]
    keep = np.isfinite(y) & np.isfinite(t) & np.all(np.isfinite(w), axis=1)
    X, y = np.column_stack([t, w])[keep], y[keep]
    picks: list[NDArray[np.float64]] = []
    if len(y) < 2:
        picks = list(rng.dirichlet(np.ones(k), size=count))
    else:
        y = standardise(y)
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * TimeVaryingRBF() + WhiteKernel(0.1, (1e-6, 1))
        gp = _fit(X, y, kernel, optimize=True)
        kappa = ucb_kappa(len(y))
        Xh, yh, gp_h = X, y, gp
        extra: list[NDArray[np.float64]] = [] if pending is None else list(np.asarray(pending, float).reshape(-1, k))
        for _ in range(count):
            if extra:  # hallucinate pending points / earlier picks at their predicted mean
                Xe = np.column_stack([np.full(len(extra), float(now)), extra])
                Xh, yh = np.vstack([Xh, Xe]), np.concatenate([yh, gp.predict(Xe)])
                gp_h, extra = _fit(Xh, yh, gp.kernel_, optimize=False), []
            cand = rng.dirichlet(np.ones(k), size=int(candidates))
            Xc = np.column_stack([np.full(len(cand), float(now)), cand])
            ucb = gp.predict(Xc) + kappa * gp_h.predict(Xc, return_std=True)[1]
            picks.append(cand[int(np.argmax(ucb))])
            extra = [picks[-1]]
    out = np.maximum(np.asarray(picks), weight_floor)
    normalised: NDArray[np.float64] = out / out.sum(axis=1, keepdims=True)
    return normalised
