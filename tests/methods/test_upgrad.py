"""UPGrad: torchjd's documented example, the mean when nothing conflicts, no conflict with any
task, and the exactness of the dual-cone projection solver.

UPGrad's non-negative QP against a brute-force solve over every active set, on correlated
problems where the active-set method must drop variables again (its inner loop)."""

import itertools

import numpy as np
import torch

from scalarize.methods import build_method
from scalarize.methods.upgrad import nonnegative_qp


def _method(num_tasks=2):
    method = build_method("upgrad")
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_torchjd_documented_example():
    method = _method()
    d = method.aggregate(torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]), torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([0.2929, 1.9004, 1.9004]), atol=1e-4, rtol=0)
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.1109, 0.7894]), atol=1e-4, rtol=0)


def test_two_conflicting_gradients_by_hand():
    # g1 = (1, 0), g2 = (−1, 1) conflict. π(g1) = g1 + ½ g2 = (½, ½) (onto g2·x ≥ 0, and then
    # g1·π(g1) = ½ ≥ 0); π(g2) = g2 + g1 = (0, 1). d = mean = (¼, ¾), up to torchjd's 1e-4
    # regularisation of the Gramian.
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    method = _method()
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), torch.tensor([0.25, 0.75]), atol=1e-3, rtol=0)
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 0.75]), atol=1e-3, rtol=0)


def test_non_conflicting_gradients_give_the_mean():
    G = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 3.0]])
    torch.testing.assert_close(_method(3).aggregate(G, torch.ones(3)), G.mean(dim=0))


def test_the_update_conflicts_with_no_task():
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        G = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        d = _method(4).aggregate(G, torch.ones(4))
        assert (G @ d >= -1e-6 * G.norm() * d.norm()).all()


def test_nonnegative_qp_satisfies_kkt():
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 6):
        A = rng.normal(size=(m, m + 2))
        Q = A @ A.T + 1e-3 * np.eye(m)
        c = rng.normal(size=m)
        x = nonnegative_qp(Q, c)
        grad = Q @ x + c
        assert (x >= 0).all()
        assert (grad >= -1e-9).all()
        assert abs(x @ grad) < 1e-9


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
