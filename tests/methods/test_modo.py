"""MoDo: one λ step by hand from two batches, the mean of both batches' directions, the
single-batch fallback, and torchjd's λ sequence."""

import torch
from torch import nn
from torchjd.aggregation import MoDoWeighting

from scalarize.methods import INDEPENDENT_BATCHES, StepContext, build_method


def _method(num_tasks=2, **options):
    method = build_method("modo", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_one_step_from_two_batches_by_hand():
    # J₁ = diag(1, 2), J₂ = I: J₁J₂ᵀλ = (½, 1); step = that + 0.1 λ = (0.55, 1.05);
    # λ − 0.1 step = (0.445, 0.395) → Π_Δ adds 0.08 each: (0.525, 0.475);
    # d = λᵀ (J₁ + J₂)/2 = 0.525 (1, 0) + 0.475 (0, 1.5)
    assert INDEPENDENT_BATCHES in build_method("modo").needs
    theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    first = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    second = torch.eye(2, dtype=torch.float64)
    ctx = StepContext(
        first @ theta + 1,
        features=None,
        shared_params=[theta],
        task_params=[[], []],
        independent_losses=lambda: second @ theta + 1,
    )
    method = _method()
    method.backward(ctx)
    torch.testing.assert_close(method.lambd, torch.tensor([0.525, 0.475], dtype=torch.float64))
    torch.testing.assert_close(theta.grad, torch.tensor([0.525, 0.7125], dtype=torch.float64))


def test_single_batch_fallback_uses_the_step_gramian(gradient_context):
    G = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    method = _method()
    ctx = gradient_context(G)
    method.backward(ctx)
    # GGᵀλ = (½, 2); λ − 0.1 (GGᵀλ + 0.1 λ) = (0.445, 0.295) → + 0.13 each = (0.575, 0.425)
    torch.testing.assert_close(method.lambd, torch.tensor([0.575, 0.425], dtype=torch.float64))
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.575, 0.85], dtype=torch.float64))


def test_same_lambda_sequence_as_torchjd():
    gen = torch.Generator().manual_seed(0)
    ours, theirs = _method(3, gamma=0.05, rho=0.2), MoDoWeighting(gamma=0.05, rho=0.2)
    for _ in range(5):
        a = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        b = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(ours.update(a, b), theirs(a @ b.T))
