"""MGDA and MGDA-UB: the closed-form min-norm point of two gradients, weights on the simplex,
and MGDA-UB's weights from the representation's gradients."""

import pytest
import torch
from torch import nn

from scalarize.methods import StepContext, build_method


def _method(name="mgda", num_tasks=2, **options):
    method = build_method(name, **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def _closed_form(g1, g2):
    alpha = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    alpha = min(max(alpha, 0.0), 1.0)
    return torch.tensor([alpha, 1 - alpha])


def test_two_gradients_by_hand(gradient_context):
    # g1 = (1, 0), g2 = (0, 2): α₁ = ((g2−g1)·g2)/‖g1−g2‖² = 4/5; d = (0.8, 0.4), and d·g1 = d·g2.
    method = _method()
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.8, 0.4]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))


def test_matches_the_closed_form_on_random_pairs_and_clips():
    method = _method()
    gen = torch.Generator().manual_seed(0)
    pairs = [torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in range(20)]
    pairs.append(torch.tensor([[1.0, 0.0], [2.0, 0.1]], dtype=torch.float64))  # α clipped to 1
    for G in pairs:
        expected = _closed_form(G[0], G[1]).to(G)
        torch.testing.assert_close(method.aggregate(G, torch.ones(2)), expected @ G)
    assert float(method.current_weights()[0]) == 1.0


def test_weights_on_the_simplex_and_minimal_norm():
    method = _method(num_tasks=4, epsilon=1e-9, max_iters=5000)  # Frank–Wolfe run to precision
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    d = method.aggregate(G, torch.ones(4))
    w = method.current_weights()
    assert (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-9
    # no random point of the hull has a smaller norm (Dirichlet(1) = normalised exponentials)
    e = -torch.log(torch.rand(2000, 4, generator=gen, dtype=torch.float64))
    candidates = e / e.sum(dim=1, keepdim=True)
    assert (candidates @ G).norm(dim=1).min() >= d.norm() - 1e-6


def test_l2_normalisation_finds_alpha_on_unit_gradients():
    method = _method(normalization="l2")
    G = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    method.aggregate(G, torch.ones(2))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 0.5]))


def test_mgda_ub_uses_the_representation_gradients():
    # z = θ (a [1, 2] representation); ∇_z L1 = (1, 0), ∇_z L2 = (0, 2) → α = (0.8, 0.2)
    theta = nn.Parameter(torch.tensor([1.0, 1.0]))
    z = theta.unsqueeze(0) * 1.0
    losses = torch.stack([z[0, 0] + 1, 2 * z[0, 1] + 1])
    ctx = StepContext(losses, features=z, shared_params=[theta], task_params=[[], []])
    method = _method("mgda_ub")
    method.backward(ctx)
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(theta.grad, torch.tensor([0.8, 0.4]))


@pytest.mark.parametrize("num_tasks", [2, 3, 10, 40])
@pytest.mark.parametrize("kind", ["random", "rank-deficient", "identical"])
def test_the_numpy_frank_wolfe_is_torchjds_iteration(num_tasks, kind):
    """Same iterates as torchjd's MGDAWeighting (written in tensor operations), to rounding."""
    import numpy as np
    from torchjd.aggregation import MGDAWeighting

    from scalarize.methods._min_norm import MinNormWeighting, frank_wolfe

    rng = np.random.default_rng(num_tasks)
    rows = {"random": rng.normal(size=(num_tasks, 30)) + 0.3,
            "rank-deficient": rng.normal(size=(num_tasks, 2)) @ rng.normal(size=(2, 30)),
            "identical": np.tile(rng.normal(size=(1, 30)), (num_tasks, 1))}[kind]
    gram = rows @ rows.T
    for epsilon, max_iters in [(1e-3, 100), (1e-6, 250), (0.5, 3)]:
        theirs = MGDAWeighting(epsilon=epsilon, max_iters=max_iters)(torch.from_numpy(gram)).numpy()
        ours = frank_wolfe(gram, epsilon, max_iters)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    weights = MinNormWeighting()(torch.from_numpy(gram).float())
    assert weights.dtype == torch.float32 and abs(float(weights.sum()) - 1) < 1e-6
