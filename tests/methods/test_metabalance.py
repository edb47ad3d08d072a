"""MetaBalance: an auxiliary gradient's norm is moved toward the target's by the relax factor,
per shared tensor, with moving averages of the norms."""

import math

import torch
from torch import nn

from scalarize.methods import StepContext, build_method


def _method(**options):
    method = build_method("metabalance", **options)
    method.setup(["target", "aux"])
    return method


def test_rescales_the_auxiliary_gradient_by_the_relax_factor(gradient_context):
    # ‖g_target‖ = 5, ‖g_aux‖ = 1 → ratio of the averages 5 (both start at 0, β = 0.9):
    # g_aux ← 0.7·5·g_aux + 0.3·g_aux = 3.8·g_aux
    G = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    method = _method()
    ctx = gradient_context(G)
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([3.0 + 3.8, 4.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 3.8]))
    assert method.norm_averages is not None
    torch.testing.assert_close(method.norm_averages, torch.tensor([[0.5], [0.1]]))


def test_relax_factor_bounds():
    G = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    torch.testing.assert_close(_method(relax_factor=0.0).aggregate(G, torch.ones(2)), G.sum(0))
    # r = 1: the auxiliary gradient takes the target's norm
    torch.testing.assert_close(_method(relax_factor=1.0).aggregate(G, torch.ones(2)), torch.tensor([8.0, 4.0]))


def test_moving_averages_over_steps():
    method = _method()
    method.aggregate(torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.ones(2))
    d = method.aggregate(torch.tensor([[6.0, 8.0], [0.0, 1.0]]), torch.ones(2))
    m_target, m_aux = 0.9 * 0.5 + 0.1 * 10.0, 0.9 * 0.1 + 0.1 * 1.0
    scale = 0.7 * m_target / m_aux + 0.3
    torch.testing.assert_close(d, torch.tensor([6.0, 8.0 + scale]))


def test_each_shared_tensor_is_balanced_separately():
    a = nn.Parameter(torch.zeros(2))
    b = nn.Parameter(torch.zeros(1))
    # tensor a: target (3, 4), aux (1, 0) → scale 3.8; tensor b: target 2, aux 4 → ratio ½,
    # scale 0.7·½ + 0.3 = 0.65
    losses = torch.stack([3 * a[0] + 4 * a[1] + 2 * b[0] + 1, a[0] + 4 * b[0] + 1])
    ctx = StepContext(losses, features=None, shared_params=[a, b], task_params=[[], []])
    _method().backward(ctx)
    torch.testing.assert_close(a.grad, torch.tensor([3.0 + 3.8, 4.0]))
    torch.testing.assert_close(b.grad, torch.tensor([2.0 + 0.65 * 4.0]))


def test_three_steps_by_hand():
    method = _method(relax_factor=0.5, beta=0.8)
    m = [0.0, 0.0]
    for rows in ([[3.0, 4.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 4.0]], [[6.0, 8.0], [0.3, 0.4]]):
        G = torch.tensor(rows)
        d = method.aggregate(G, torch.ones(2))
        norms = [math.hypot(*rows[0]), math.hypot(*rows[1])]
        m = [0.8 * mi + 0.2 * ni for mi, ni in zip(m, norms)]
        scale = 0.5 * m[0] / m[1] + 0.5
        torch.testing.assert_close(d, torch.tensor([rows[0][k] + scale * rows[1][k] for k in range(2)]))
        torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, scale]))
