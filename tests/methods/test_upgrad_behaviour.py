"""UPGrad's non-negative QP against a brute-force solve over every active set, on correlated
problems where the active-set method must drop variables again (its inner loop)."""

import itertools

import numpy as np

from scalarize.methods.upgrad import nonnegative_qp


def _brute_force(Q, c):
    """``argmin_{x ≥ 0} ½ xᵀQx + cᵀx``: the best feasible stationary point over every support."""
    m, best = c.size, None
    for r in range(m + 1):
        for support in itertools.combinations(range(m), r):
            x = np.zeros(m)
            idx = list(support)
            if idx:
                x[idx] = np.linalg.solve(Q[np.ix_(idx, idx)], -c[idx])
            if (x < -1e-12).any():
                continue
            value = 0.5 * x @ Q @ x + c @ x
            if best is None or value < best[0] - 1e-14:
                best = (value, x)
    return best[1]


def test_nonnegative_qp_is_the_brute_force_optimum_on_correlated_problems():
    rng = np.random.default_rng(0)
    for _ in range(30):
        m = int(rng.integers(3, 7))
        A = np.ones((m, 1)) @ rng.normal(size=(1, m + 2)) + 0.3 * rng.normal(size=(m, m + 2))
        Q = A @ A.T + 1e-3 * np.eye(m)
        c = rng.normal(size=m)
        np.testing.assert_allclose(nonnegative_qp(Q, c), _brute_force(Q, c), rtol=0, atol=1e-8)
