"""CAGrad's dual solved to optimality (KKT on the simplex, tight), the rescale options' exact
divisors on random problems, zero gradients, a Pareto-stationary point, and the simplex
projection by hand."""

import numpy as np
import pytest
import torch

from scalarize.methods import build_method
from scalarize.methods.cagrad import project_simplex

DIVISOR = {0: lambda c: 1.0, 1: lambda c: 1 + c * c, 2: lambda c: 1 + c}


def _method(num_tasks, **options):
    method = build_method("cagrad", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


@pytest.mark.parametrize("rescale", [0, 1, 2])
@pytest.mark.parametrize("c", [0.2, 0.7])
def test_dual_optimum_satisfies_kkt(rescale, c):
    rng = np.random.default_rng(int(10 * c) + rescale)
    for _ in range(4):
        rows = rng.normal(size=(4, 6))
        rows[1] = -0.7 * rows[0] + 0.2 * rows[1]
        G = torch.from_numpy(rows)
        method = _method(4, c=c, rescale=rescale)
        d = method.aggregate(G, torch.ones(4)).numpy()
        lam = method.current_weights().numpy() * DIVISOR[rescale](c)
        mean = np.full(4, 0.25)
        w = (lam - mean) / (lam - mean).sum()  # λ·divisor = mean + (k/‖g_w‖) w
        assert w.min() >= -1e-12
        # the dual's KKT conditions on the trace-normalised Gramian
        A = rows @ rows.T / np.trace(rows @ rows.T)
        a = A @ mean
        k = c * np.sqrt(mean @ a)
        grad = a + k * (A @ w) / np.sqrt(w @ A @ w)
        support = w > 1e-9
        level = grad[support].min()
        assert np.abs(grad[support] - level).max() < 1e-7
        assert (grad >= level - 1e-7).all()
        # the update from those weights, and its distance from the mean gradient
        g0 = rows.mean(axis=0)
        expected = (g0 + c * np.linalg.norm(g0) * (w @ rows) / np.linalg.norm(w @ rows)) / DIVISOR[rescale](c)
        np.testing.assert_allclose(d, expected, rtol=1e-7, atol=1e-10)


def test_zero_gradients_and_a_pareto_stationary_point():
    method = _method(3)
    d = method.aggregate(torch.zeros(3, 4, dtype=torch.float64), torch.ones(3))
    assert (d == 0).all()
    torch.testing.assert_close(method.current_weights(), torch.full((3,), 1 / 3, dtype=torch.float64))
    # g1 = −g2: 0 is in the hull, the update is 0 (as in torchjd)
    G = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64)
    method = _method(2)
    assert (method.aggregate(G, torch.ones(2)) == 0).all()
    assert (method.current_weights() == 0).all()


@pytest.mark.parametrize(
    ("v", "expected"),
    [([0.2, 0.8], [0.2, 0.8]), ([1.0, 1.0, 1.0], [1 / 3, 1 / 3, 1 / 3]), ([0.9, 0.6, 0.1], [0.65, 0.35, 0.0]), ([3.0, -1.0], [1.0, 0.0])],
)
def test_simplex_projection_by_hand(v, expected):
    np.testing.assert_allclose(project_simplex(np.array(v)), expected, atol=1e-15)
