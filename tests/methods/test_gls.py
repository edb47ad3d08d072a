"""GLS: the geometric mean of the losses, its gradient by hand, torchjd's value, and the
invariance of its update direction to a task's loss scale."""

import math

import torch
from torchjd.scalarization import GeometricMean

from scalarize.methods import build_method


def _method(num_tasks=2):
    method = build_method("gls")
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_value_and_gradient_by_hand():
    # (4 · 1)^{1/2} = 2; ∂/∂L_i = L / (T L_i) = (2/8, 2/2)
    losses = torch.tensor([4.0, 1.0], requires_grad=True)
    method = _method()
    value = method.combine(losses)
    assert math.isclose(value.item(), 2.0, rel_tol=1e-6)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.25, 1.0]))


def test_same_value_as_torchjd():
    losses = torch.rand(5, generator=torch.Generator().manual_seed(0)) + 0.1
    torch.testing.assert_close(_method(5).combine(losses), GeometricMean()(losses))


def test_update_direction_ignores_a_loss_scale(gradient_context):
    G = torch.tensor([[1.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    losses = torch.tensor([2.0, 3.0], dtype=torch.float64)
    directions = []
    for scale in (1.0, 100.0):  # task 1's loss (and so its gradient) multiplied by 100
        c = torch.tensor([scale, 1.0], dtype=torch.float64)
        ctx = gradient_context(G * c[:, None], losses * c)
        _method().backward(ctx)
        directions.append(ctx.shared_params[0].grad)
    a, b = (d / d.norm() for d in directions)
    torch.testing.assert_close(a, b)
