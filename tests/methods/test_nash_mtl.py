"""Nash-MTL: the bargaining solution of orthogonal gradients by hand, αᵢ (gᵢ·d) = 1 in general,
norm clipping, and reuse of the weights between updates."""

import math

import torch

from scalarize.methods import build_method


def _method(num_tasks=2, **options):
    method = build_method("nash_mtl", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_orthogonal_gradients_by_hand():
    # G Gᵀ = diag(4, 1): αᵢ² ‖gᵢ‖² = 1 → α = (½, 1), d = (1, 1)
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    method = _method(max_norm=0.0)
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 1.0]))
    clipped = _method(max_norm=1.0).aggregate(G, torch.ones(2))
    torch.testing.assert_close(clipped, torch.tensor([1.0, 1.0]) / math.sqrt(2))


def test_bargaining_condition_holds():
    gen = torch.Generator().manual_seed(0)
    for num_tasks in (2, 3, 5):
        G = torch.randn(num_tasks, 8, generator=gen, dtype=torch.float64)
        method = _method(num_tasks, max_norm=0.0)
        d = method.aggregate(G, torch.ones(num_tasks))
        alpha = method.current_weights()
        assert (alpha > 0).all()
        torch.testing.assert_close(alpha * (G @ d), torch.ones(num_tasks, dtype=torch.float64))


def test_weights_are_reused_between_updates():
    method = _method(max_norm=0.0, update_weights_every=2)
    method.aggregate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.ones(2))
    method.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.ones(2))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 1.0]))
    method.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.ones(2))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 1.0]))
