"""DB-MTL: two steps by hand (log-loss gradients, moving averages from zero, scaling to the
largest norm), the heads' log-loss gradients, β's decay and loss-scale invariance.

DB-MTL with a visible ε and a decaying β over three steps by hand (the update, the averages,
the reported weights), through both entry points (backward and aggregate), and float32 gradients
with float64 state."""

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
    torch.testing.assert_close(
        method.current_weights(), torch.tensor([0.1 * a[0] / 2, 0.1 * a[1] / 1], dtype=torch.float64)
    )


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


def _by_hand(steps, beta, sigma, eps):
    """The rule from the paper, in plain Python: g̃_i = g_i/(L_i + ε); β_t = β / t^σ;
    ĝ ← β_t ĝ + (1 − β_t) g̃ (from 0); α_i = max_j ‖ĝ_j‖ / ‖ĝ_i‖; d = Σ α_i ĝ_i;
    weights (1 − β_t) α_i / (L_i + ε)."""
    avg = [[0.0, 0.0], [0.0, 0.0]]
    out = []
    for t, (G, L) in enumerate(steps, start=1):
        b = beta / t**sigma
        scaled = [[g / (loss + eps) for g in row] for row, loss in zip(G, L)]
        avg = [[b * a + (1 - b) * s for a, s in zip(ar, sr)] for ar, sr in zip(avg, scaled)]
        norms = [math.sqrt(sum(x * x for x in row)) for row in avg]
        alpha = [max(norms) / (n + 1e-8) for n in norms]
        d = [sum(alpha[i] * avg[i][k] for i in range(2)) for k in range(2)]
        weights = [(1 - b) * alpha[i] / (L[i] + eps) for i in range(2)]
        out.append((d, [row[:] for row in avg], weights))
    return out


STEPS = [
    ([[3.0, 4.0], [0.0, 1.0]], [1.0, 2.0]),
    ([[0.0, 2.0], [1.0, 0.0]], [2.0, 1.0]),
    ([[1.0, -1.0], [2.0, 1.0]], [0.5, 3.0]),
]


def test_three_steps_with_a_large_eps_and_decaying_beta(gradient_context):
    expected = _by_hand(STEPS, beta=0.6, sigma=0.5, eps=0.5)
    method = _method(beta=0.6, beta_sigma=0.5, eps=0.5)
    for (G, L), (d, avg, weights) in zip(STEPS, expected):
        ctx = gradient_context(torch.tensor(G, dtype=torch.float64), torch.tensor(L))
        method.backward(ctx)
        torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(method.averages, torch.tensor(avg, dtype=torch.float64))
        torch.testing.assert_close(method.current_weights(), torch.tensor(weights, dtype=torch.float64))
    assert int(method.steps) == 3


def test_aggregate_is_the_same_rule():
    expected = _by_hand(STEPS, beta=0.6, sigma=0.5, eps=0.5)
    method = _method(beta=0.6, beta_sigma=0.5, eps=0.5)
    for (G, L), (d, _, _) in zip(STEPS, expected):
        out = method.aggregate(torch.tensor(G, dtype=torch.float64), torch.tensor(L, dtype=torch.float64))
        torch.testing.assert_close(out, torch.tensor(d, dtype=torch.float64))


def test_heads_use_the_same_eps():
    w = nn.Parameter(torch.tensor([1.0]))
    head = nn.Parameter(torch.tensor([2.0]))
    losses = torch.stack([w[0] ** 2 + head[0] ** 2, 3 * w[0]])  # L = (5, 3)
    ctx = StepContext(losses, features=None, shared_params=[w], task_params=[[head], []])
    _method(eps=1.0).backward(ctx)
    torch.testing.assert_close(head.grad, torch.tensor([4.0 / 6.0]))


def test_float32_gradients_after_float64_state():
    method = _method()
    method.aggregate(torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    out = method.aggregate(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.ones(2))
    assert out.dtype == torch.float32 and method.averages.dtype == torch.float32
