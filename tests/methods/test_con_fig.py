"""ConFIG: two cases by hand (equal projections on the unit gradients), torchjd's update, and
the direction's independence of the gradients' lengths."""

import math

import torch
from torchjd.aggregation import ConFIG as TorchJDConFIG

from scalarize.methods import build_method


def _method(num_tasks=2):
    method = build_method("config")
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_orthogonal_gradients_by_hand():
    # u = e₁, e₂: U⁺1 = (1, 1), e = (1, 1)/√2; length = (1 + 2)/√2; d = 1.5 (1, 1)
    G = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    method = _method()
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), torch.tensor([1.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.5, 0.75], dtype=torch.float64))


def test_conflicting_gradients_by_hand():
    # g₁ = (1, 0), g₂ = (−1, 1): U d̂ = 1 gives d̂ = (1, 1 + √2); e = d̂/‖d̂‖,
    # length = g₁·e + g₂·e = (1 + √2)/‖d̂‖, so d = (1 + √2) d̂ / ‖d̂‖²
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    d_hat = torch.tensor([1.0, 1.0 + math.sqrt(2)], dtype=torch.float64)
    expected = (1 + math.sqrt(2)) * d_hat / (d_hat @ d_hat)
    d = _method().aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, expected)
    units = G / G.norm(dim=1, keepdim=True)
    projections = units @ d
    assert projections.min() > 0 and abs(float(projections[0] - projections[1])) < 1e-12


def test_same_update_as_torchjd():
    gen = torch.Generator().manual_seed(0)
    for num_tasks in (2, 3, 5):
        G = torch.randn(num_tasks, 8, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(_method(num_tasks).aggregate(G, torch.ones(num_tasks)), TorchJDConFIG()(G))
    G = torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)  # dependent, zero
    torch.testing.assert_close(_method(3).aggregate(G, torch.ones(3)), TorchJDConFIG()(G))


def test_direction_ignores_the_gradients_lengths():
    G = torch.tensor([[1.0, 0.2, 0.0], [-0.5, 1.0, 0.3], [0.1, -0.4, 1.0]], dtype=torch.float64)
    a = _method(3).aggregate(G, torch.ones(3))
    b = _method(3).aggregate(G * torch.tensor([[10.0], [0.1], [3.0]], dtype=torch.float64), torch.ones(3))
    torch.testing.assert_close(a / a.norm(), b / b.norm())
