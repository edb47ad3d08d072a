"""FairGrad: orthogonal gradients by hand, the α-fair condition (G Gᵀ) w = w^(−1/α), Nash-MTL at
α = 1, uniform weights at α = 0, agreement with the official least-squares solve, and max_norm by
hand (the shared update clipped above it, untouched at or below it, off at 0; heads unclipped)."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchjd.aggregation import FairGradWeighting

from scalarize.methods import StepContext, build_method
from scalarize.methods.fairgrad import fairgrad_weights
from scalarize.methods.nash_mtl import nash_weights


def _method(num_tasks=2, **options):
    method = build_method("fairgrad", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_orthogonal_gradients_by_hand():
    # G Gᵀ = diag(4, 1); ‖g_i‖² w_i = w_i^(−1/2) → w_i = ‖g_i‖^(−4/3): (4^(−2/3), 1)
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method = _method(alpha=2.0)
    d = method.aggregate(G, torch.ones(2))
    w = 4.0 ** (-2.0 / 3.0)
    torch.testing.assert_close(method.current_weights(), torch.tensor([w, 1.0], dtype=torch.float64))
    torch.testing.assert_close(d, torch.tensor([2 * w, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
def test_fairness_condition_holds(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    for num_tasks in (2, 3, 6):
        G = rng.normal(size=(num_tasks, 9))
        w = fairgrad_weights(G @ G.T, alpha)
        assert (w > 0).all()
        np.testing.assert_allclose(G @ (G.T @ w), w ** (-1.0 / alpha), rtol=1e-6)


def test_alpha_one_is_nash_mtl_and_alpha_zero_is_uniform():
    rng = np.random.default_rng(1)
    G = rng.normal(size=(4, 7))
    np.testing.assert_allclose(fairgrad_weights(G @ G.T, 1.0), nash_weights(G @ G.T), rtol=1e-6)
    np.testing.assert_allclose(fairgrad_weights(G @ G.T, 0.0), np.full(4, 0.25))


def test_agrees_with_the_official_least_squares_solve():
    rng = np.random.default_rng(2)
    for _ in range(3):
        G = rng.normal(size=(3, 8)) + 0.5
        gram = torch.from_numpy(G @ G.T)
        theirs = FairGradWeighting(alpha=2.0)(gram).numpy()
        np.testing.assert_allclose(fairgrad_weights(gram.numpy(), 2.0), theirs, rtol=1e-4)


def test_linearly_dependent_gradients_give_finite_weights():
    G = torch.tensor([[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    d = _method(3).aggregate(G, torch.ones(3))
    assert torch.isfinite(d).all() and (G @ d > 0).all()


@pytest.mark.parametrize(
    ("alpha", "max_norm", "expected"),
    [
        # α = 0: w = (½, ½), d = (1.5, 2), ‖d‖ = 2.5
        (0.0, 0.0, (1.5, 2.0)),  # off
        (0.0, 1.0, (0.6, 0.8)),  # clipped to norm 1
        (0.0, 2.5, (1.5, 2.0)),  # at the norm: untouched
        # α = 1: ‖g_i‖² w_i = 1/w_i → w = (⅓, ¼), d = (1, 1), ‖d‖ = √2
        (1.0, 1.0, (1 / math.sqrt(2), 1 / math.sqrt(2))),
        (1.0, 3.0, (1.0, 1.0)),
    ],
)
def test_max_norm_clips_the_shared_update_only(alpha, max_norm, expected):
    theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    head = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    losses = torch.stack([3 * theta[0] + 1 + 10 * head[0], 4 * theta[1] + 1])  # G = diag(3, 4)
    ctx = StepContext(losses, features=None, shared_params=[theta], task_params=[[head], []])
    method = _method(alpha=alpha, max_norm=max_norm)
    method.backward(ctx)
    torch.testing.assert_close(theta.grad, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(head.grad, torch.tensor([10.0], dtype=torch.float64))  # not clipped
    weights = (0.5, 0.5) if alpha == 0 else (1 / 3, 1 / 4)  # reported before the clipping
    torch.testing.assert_close(method.current_weights(), torch.tensor(weights, dtype=torch.float64))
