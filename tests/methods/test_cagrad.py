"""CAGrad: a hand-solved case, the mean at c = 0, and the max–min property of the update."""

import torch

from scalarize.methods import build_method


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
    torch.testing.assert_close(
        _method(rescale=0).aggregate(G, torch.ones(2)), torch.tensor([0.7, 0.7])
    )
    G = torch.randn(3, 5)
    torch.testing.assert_close(_method(3, c=0.0).aggregate(G, torch.ones(3)), G.mean(dim=0))


def test_update_maximises_the_worst_improvement_in_the_ball():
    gen = torch.Generator().manual_seed(0)
    for seed in range(5):
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
