"""IMTL-G: weights summing to one that give equal projections on the unit task gradients."""

import torch

from scalarize.methods import build_method


def _method(num_tasks=2):
    method = build_method("imtl_g")
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_two_gradients_by_hand():
    # g1 = (1, 0), g2 = (0, 2): d = α1 g1 + α2 g2 with d·u1 = d·u2 → α1 = 2 α2 → α = (⅔, ⅓)
    method = _method()
    d = method.aggregate(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([2 / 3, 2 / 3]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([2 / 3, 1 / 3]))


def test_equal_projections_on_unit_gradients():
    method = _method(3)
    G = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = method.aggregate(G, torch.ones(3))
    projections = (G / G.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(projections, projections[0].expand(3))
    assert abs(float(method.current_weights().sum()) - 1) < 1e-9
