"""CAGrad: a hand-solved case, the mean at c = 0, and the max–min property of the update.

CAGrad's dual solved to optimality (KKT on the simplex, tight), the rescale options' exact
divisors on random problems, zero gradients, a Pareto-stationary point, and the simplex
projection by hand."""

import numpy as np
import pytest
import torch

from scalarize.methods import build_method
from scalarize.methods.cagrad import project_simplex


def _method(num_tasks=2, **options):
    method = build_method("cagrad", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_hand_solved_case():
    # g1 = (1, 0), g2 = (−1, 1): g0 = (0, ½), ‖g0‖ = ½. With w = (t, 1−t) the dual objective
    # ½(1−t) + 0.4·½·√(5t² − 6t + 2) has a negative derivative on [0, 1], so w* = (1, 0),
    # g_w = g1 and d = g0 + 0.4·½·g1/‖g1‖ = (0.2, 0.5).
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    d = _method(rescale=0).aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([0.2, 0.5]))
    d = _method(rescale=1).aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([0.2, 0.5]) / 1.16)
    d = _method(rescale=2).aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([0.2, 0.5]) / 1.4)


def test_symmetric_case_and_c_zero_is_the_mean():
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # w* = (½, ½) by symmetry: d = g0 (1 + c)
    torch.testing.assert_close(_method(rescale=0).aggregate(G, torch.ones(2)), torch.tensor([0.7, 0.7]))
    G = torch.randn(3, 5)
    torch.testing.assert_close(_method(3, c=0.0).aggregate(G, torch.ones(3)), G.mean(dim=0))


def test_update_maximises_the_worst_improvement_in_the_ball():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        G = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        G[1] = -0.5 * G[0] + 0.3 * G[1]  # some conflict
        c = 0.5
        d = _method(3, c=c, rescale=0).aggregate(G, torch.ones(3))
        g0 = G.mean(dim=0)
        radius = c * g0.norm()
        assert abs(float((d - g0).norm() - radius)) < 1e-6  # on the boundary
        directions = torch.randn(4000, 4, generator=gen, dtype=torch.float64)
        directions = directions / directions.norm(dim=1, keepdim=True)
        scale = torch.rand(4000, 1, generator=gen, dtype=torch.float64) ** 0.25
        samples = g0 + radius * scale * directions
        best_sampled = (samples @ G.T).min(dim=1).values.max()
        assert float((G @ d).min()) >= float(best_sampled) - 1e-6


DIVISOR = {0: lambda c: 1.0, 1: lambda c: 1 + c * c, 2: lambda c: 1 + c}


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
    [
        ([0.2, 0.8], [0.2, 0.8]),
        ([1.0, 1.0, 1.0], [1 / 3, 1 / 3, 1 / 3]),
        ([0.9, 0.6, 0.1], [0.65, 0.35, 0.0]),
        ([3.0, -1.0], [1.0, 0.0]),
    ],
)
def test_simplex_projection_by_hand(v, expected):
    np.testing.assert_allclose(project_simplex(np.array(v)), expected, atol=1e-15)
