"""GradVac: with zero targets a correction is PCGrad's projection; a positive target is reached
exactly; the EMA of the targets is kept in state_dict."""

import math

import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("gradvac", **options)
    method.setup(["a", "b"])
    return method


def test_first_step_with_zero_targets_is_pcgrad_and_updates_the_targets():
    method = _method(beta=0.5, seed=0)
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), torch.tensor([0.5, 1.5]))
    cos = -1 / math.sqrt(2)
    expected = torch.tensor([[0.0, 0.5 * cos], [0.5 * cos, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(method.phi_hat, expected)
    assert "phi_hat" in method.state_dict()


def test_a_positive_target_is_reached_exactly():
    method = _method(beta=0.0, seed=0)
    method.phi_hat.fill_(0.5)
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = method.aggregate(G, torch.ones(2))
    # g1' = g1 + ‖g1‖ (0.5·1 − 0·√0.75) / (‖g2‖ √0.75) g2 = (1, 1/√3), symmetrically for g2.
    k = 1 / math.sqrt(3)
    torch.testing.assert_close(d, torch.tensor([1 + k, 1 + k]))
    g1_new = torch.tensor([1.0, k])
    cos = torch.nn.functional.cosine_similarity(g1_new, G[1], dim=0)
    assert math.isclose(float(cos), 0.5, rel_tol=1e-6)


def test_gradients_above_their_targets_are_unchanged():
    method = _method(seed=0)
    G = torch.tensor([[1.0, 0.2], [0.3, 1.0]])
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), G.sum(dim=0))
