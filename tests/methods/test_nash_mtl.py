"""Nash-MTL: the bargaining solution of orthogonal gradients by hand, αᵢ (gᵢ·d) = 1 in general,
norm clipping, and reuse of the weights between updates.

Nash-MTL's max_norm by hand (clipped above it, untouched at or below it, off at 0), zero
gradients, and the scale_heads option's check."""

import math

import pytest
import torch

from scalarize.methods import MethodError, build_method


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


def test_heads_are_unscaled_unless_asked():
    from torch import nn

    from scalarize.methods import StepContext

    for scale_heads in (False, True):
        theta = nn.Parameter(torch.zeros(2))
        head = nn.Parameter(torch.zeros(1))
        losses = torch.stack([2 * theta[0] + 1 + 3 * head[0], theta[1] + 1])  # α = (½, 1)
        ctx = StepContext(losses, features=None, shared_params=[theta], task_params=[[head], []])
        _method(max_norm=0.0, scale_heads=scale_heads).backward(ctx)
        torch.testing.assert_close(theta.grad, torch.tensor([1.0, 1.0]))
        torch.testing.assert_close(head.grad, torch.tensor([1.5 if scale_heads else 3.0]))


def test_update_is_invariant_to_a_tasks_gradient_scale():
    gen = torch.Generator().manual_seed(3)
    G = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    scaled = G * torch.tensor([[10.0], [1.0], [0.01]], dtype=torch.float64)
    a = _method(3, max_norm=0.0).aggregate(G, torch.ones(3))
    b = _method(3, max_norm=0.0).aggregate(scaled, torch.ones(3))
    torch.testing.assert_close(a, b)


# orthogonal g₁ = (3, 0), g₂ = (0, 4): α_i = 1/‖g_i‖, d = (1, 1), ‖d‖ = √2
G = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("max_norm", "factor"),
    [(1.0, 1 / math.sqrt(2)), (0.5, 0.5 / math.sqrt(2)), (2.0, 1.0), (0.0, 1.0), (math.sqrt(2), 1.0)],
)
def test_max_norm_by_hand(max_norm, factor):
    method = _method(max_norm=max_norm)
    d = method.aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, factor * torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(method.current_weights(), factor * torch.tensor([1 / 3, 1 / 4], dtype=torch.float64))
    torch.testing.assert_close(method.alpha, torch.tensor([1 / 3, 1 / 4], dtype=torch.float64))  # unclipped


def test_zero_gradients_give_no_update():
    method = _method()
    d = method.aggregate(torch.zeros(2, 3, dtype=torch.float64), torch.ones(2))
    assert (d == 0).all() and d.shape == (3,)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_scale_heads_is_a_boolean(value):
    with pytest.raises(MethodError) as error:
        build_method("nash_mtl", scale_heads=value)
    assert str(error.value) == f"method nash_mtl: scale_heads must be true or false, got {value!r}"
