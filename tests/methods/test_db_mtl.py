"""DB-MTL: two steps by hand (log-loss gradients, moving averages from zero, scaling to the
largest norm), the heads' log-loss gradients, β's decay and loss-scale invariance."""

import math

import torch
from torch import nn

from scalarize.methods import StepContext, build_method


def _method(**options):
    method = build_method("db_mtl", **options)
    method.setup(["a", "b"])
    return method


def _norm(v):
    return math.sqrt(sum(x * x for x in v))


def test_two_steps_by_hand(gradient_context):
    method = _method()
    # step 1: G = [[3, 4], [0, 1]], L = (1, 2): ∇log L = [[3, 4], [0, ½]]; ĝ = 0.1 · that
    ctx = gradient_context(torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64), torch.tensor([1.0, 2.0]))
    method.backward(ctx)
    m = [[0.3, 0.4], [0.0, 0.05]]
    a = [_norm(m[0]) / (_norm(m[0]) + 1e-8), _norm(m[0]) / (_norm(m[1]) + 1e-8)]
    d1 = [a[0] * m[0][k] + a[1] * m[1][k] for k in range(2)]
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor(d1, dtype=torch.float64))
    # step 2: G = [[0, 2], [1, 0]], L = (2, 1): ∇log L = [[0, 1], [1, 0]]; ĝ = 0.1 g + 0.9 ĝ
    ctx = gradient_context(torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.float64), torch.tensor([2.0, 1.0]))
    method.backward(ctx)
    g = [[0.0, 1.0], [1.0, 0.0]]
    m = [[0.1 * g[i][k] + 0.9 * m[i][k] for k in range(2)] for i in range(2)]
    top = max(_norm(m[0]), _norm(m[1]))
    a = [top / (_norm(m[i]) + 1e-8) for i in range(2)]
    d2 = [a[0] * m[0][k] + a[1] * m[1][k] for k in range(2)]
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor(d2, dtype=torch.float64))
    torch.testing.assert_close(method.averages, torch.tensor(m, dtype=torch.float64))
    # this step's ∇L_i enters d with weight (1 − β) α_i / L_i
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.1 * a[0] / 2, 0.1 * a[1] / 1], dtype=torch.float64))


def test_beta_decays_with_sigma(gradient_context):
    method = _method(beta=0.8, beta_sigma=1.0)  # β_t = 0.8 / t
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method.backward(gradient_context(G))  # ĝ = 0.2 g
    method.backward(gradient_context(G))  # β_2 = 0.4: ĝ = 0.6 g + 0.4 · 0.2 g = 0.68 g
    torch.testing.assert_close(method.averages, 0.68 * G)


def test_heads_get_the_gradient_of_their_log_loss():
    w = nn.Parameter(torch.tensor([1.0]))
    head = nn.Parameter(torch.tensor([2.0]))
    losses = torch.stack([w[0] ** 2 + head[0] ** 2, 3 * w[0]])  # L = (5, 3)
    ctx = StepContext(losses, features=None, shared_params=[w], task_params=[[head], []])
    _method().backward(ctx)
    torch.testing.assert_close(head.grad, torch.tensor([4.0 / (5.0 + 1e-8)]))


def test_update_ignores_the_losses_scales(gradient_context):
    G = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    L = torch.tensor([0.5, 2.0])
    out = []
    for c in (torch.tensor([1.0, 1.0]), torch.tensor([1000.0, 0.01])):
        method = _method()
        ctx = gradient_context(G * c.double()[:, None], L * c)
        method.backward(ctx)
        out.append(ctx.shared_params[0].grad)
    torch.testing.assert_close(out[0], out[1], rtol=1e-5, atol=0)
