"""MoCo: two steps by hand (tracked Jacobian from zero, projected λ step, update along the
tracked gradients) and the tracked state across a state_dict round trip."""

import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("moco", **options)
    method.setup(["a", "b"])
    return method


def _project(a, b):
    """Euclidean projection of (a, b) onto the 2-simplex."""
    x = min(max((1.0 + a - b) / 2.0, 0.0), 1.0)
    return [x, 1.0 - x]


def _step(y, g, lambd, beta=0.1, gamma=0.1, rho=0.1):
    y = [[yi - beta * (yi - gi) for yi, gi in zip(yr, gr)] for yr, gr in zip(y, g)]
    yty = [[sum(a * b for a, b in zip(y[i], y[j])) for j in range(2)] for i in range(2)]
    step = [sum(yty[i][j] * lambd[j] for j in range(2)) + rho * lambd[i] for i in range(2)]
    lambd = _project(lambd[0] - gamma * step[0], lambd[1] - gamma * step[1])
    d = [lambd[0] * y[0][k] + lambd[1] * y[1][k] for k in range(2)]
    return y, lambd, d


def test_two_steps_by_hand(gradient_context):
    method = _method()
    y, lambd = [[0.0, 0.0], [0.0, 0.0]], [0.5, 0.5]
    for rows in ([[3.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [-2.0, 1.0]]):
        ctx = gradient_context(torch.tensor(rows, dtype=torch.float64))
        method.backward(ctx)
        y, lambd, d = _step(y, rows, lambd)
        torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(method.lambd, torch.tensor(lambd, dtype=torch.float64))
        torch.testing.assert_close(method.tracked, torch.tensor(y, dtype=torch.float64))


def test_tracked_jacobian_is_in_the_state_dict(gradient_context):
    method = _method()
    method.backward(gradient_context(torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)))
    fresh = _method()
    fresh.load_state_dict(method.state_dict())
    torch.testing.assert_close(fresh.tracked, method.tracked)
    torch.testing.assert_close(fresh.lambd, method.lambd)
