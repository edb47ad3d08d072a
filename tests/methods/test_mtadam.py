"""MTAdam: one step by hand, Adam on a tensor only one loss reaches, and the same trajectory as
the authors' algorithm (re-written loss by loss, as in their reference code)."""

import copy
import math

import pytest
import torch
from torch import nn

from scalarize.methods import OWN_OPTIMIZER, MethodError, StepContext, build_method


def _method(**options):
    method = build_method("mtadam", **options)
    method.setup(["a", "b"])
    return method


def test_brings_plain_sgd():
    method = _method()
    assert OWN_OPTIMIZER in method.needs
    opt = method.build_optimizer([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["momentum"] == 0 and opt.defaults["weight_decay"] == 0


def test_first_step_by_hand():
    # g_a = (1, 0), g_b = (0, 10): n = (1, 10), anchor a → g_b' = (0, 1). After one step
    # m̂_i = g_i', denom_i = |g_i'| + ε, so the update is (1, 1)/(1 + ε): p ← p − lr (1, 1).
    p = nn.Parameter(torch.zeros(2))
    losses = torch.stack([p[0] + 1, 10 * p[1] + 1])
    method = _method()
    opt = method.build_optimizer([p], lr=0.1)
    ctx = StepContext(losses, features=None, shared_params=[p], task_params=[[], []])
    method.backward(ctx)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.1, -0.1]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 0.1]))


def test_ranks_scale_the_balanced_gradients():
    p = nn.Parameter(torch.zeros(1))
    losses = torch.stack([p[0] + 1, -3 * p[0] + 1])
    method = _method(weights=[1.0, 0.5])
    ctx = StepContext(losses, features=None, shared_params=[p], task_params=[[], []])
    method.backward(ctx)
    # g_a' = 1, g_b' = 0.5 · 1 · (−3)/3 = −0.5; update (1 − 0.5) / max(1, 0.5) = 0.5
    torch.testing.assert_close(p.grad, torch.tensor([0.5]), atol=1e-6, rtol=0)


def _reference_step(params, losses, state, lr, betas=(0.9, 0.999, 0.9), eps=1e-8):
    """The authors' MTAdam step (mtadam.py), on CPU, one backward per loss."""
    beta1, beta2, beta3 = betas
    per_loss = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        per_loss.append([torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)])
    with torch.no_grad():
        for k, p in enumerate(params):
            s = state.setdefault(
                k,
                {
                    "step": 1,
                    "m": [torch.zeros_like(p) for _ in losses],
                    "v": [torch.zeros_like(p) for _ in losses],
                    "n": [torch.ones(()) for _ in losses],
                },
            )
            steps, denoms = [], []
            for i in range(len(losses)):
                g = per_loss[i][k]
                s["n"][i] = g.norm() if s["step"] == 1 else s["n"][i] * beta3 + (1 - beta3) * g.norm()
                if s["n"][i] > 1e-10:
                    for j in range(len(losses)):
                        if s["n"][j] > 1e-10:
                            g = s["n"][j] * g / s["n"][i]
                            break
                s["m"][i] = beta1 * s["m"][i] + (1 - beta1) * g
                s["v"][i] = beta2 * s["v"][i] + (1 - beta2) * g * g
                bc1, bc2 = 1 - beta1 ** s["step"], 1 - beta2 ** s["step"]
                denoms.append(s["v"][i].sqrt() / math.sqrt(bc2) + eps)
                steps.append(lr / bc1)
            s["step"] += 1
            max_denom = torch.stack(denoms).max(dim=0).values
            p -= sum(step * m / max_denom for step, m in zip(steps, s["m"]))


def test_same_trajectory_as_the_authors_algorithm(toy):
    run = toy(_method(), lr=0.01)
    model = copy.deepcopy(run.model)
    params = list(model.parameters())
    state = {}
    for _ in range(5):
        run.step()
        z = model.trunk(run.x)
        losses = [((h(z).squeeze(-1) - y) ** 2).mean() for h, y in zip(model.heads, run.ys)]
        _reference_step(params, losses, state, lr=0.01)
    for ours, theirs in zip(run.model.parameters(), params):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_head_reached_by_one_loss_follows_adam():
    torch.manual_seed(0)
    head = nn.Linear(3, 1)
    twin = copy.deepcopy(head)
    x, y = torch.randn(16, 3), torch.randn(16)
    shared = nn.Parameter(torch.zeros(1))  # reached by loss b only, with zero gradient
    method = _method()
    opt = method.build_optimizer(list(head.parameters()), lr=0.01)
    adam = torch.optim.Adam(twin.parameters(), lr=0.01)
    for _ in range(4):
        loss = ((head(x).squeeze(-1) - y) ** 2).mean()
        ctx = StepContext(
            torch.stack([loss, (shared**2).sum() + 1]),
            features=None,
            shared_params=[shared],
            task_params=[list(head.parameters()), []],
        )
        opt.zero_grad()
        method.backward(ctx)
        opt.step()
        adam.zero_grad()
        ((twin(x).squeeze(-1) - y) ** 2).mean().backward()
        adam.step()
    for p, q in zip(head.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)


def test_two_steps_by_hand():
    """One scalar parameter reached by both losses: n_i (first step: ‖g_i‖, then an EMA with
    β₃), g_b rescaled to the anchor a's norm, per-loss Adam moments, the largest denominator."""
    p = nn.Parameter(torch.zeros(1))
    method = _method()
    opt = method.build_optimizer([p], lr=0.1)
    b1, b2, b3, eps = 0.9, 0.999, 0.9, 1e-8
    n = [0.0, 0.0]
    m = [0.0, 0.0]
    v = [0.0, 0.0]
    x = 0.0
    for t, (ga, gb) in enumerate([(1.0, -4.0), (2.0, 1.0)], start=1):
        losses = torch.stack([ga * p[0] + 1, gb * p[0] + 1])
        opt.zero_grad()
        method.backward(StepContext(losses, features=None, shared_params=[p], task_params=[[], []]))
        opt.step()
        n = [abs(ga), abs(gb)] if t == 1 else [b3 * n[0] + (1 - b3) * abs(ga), b3 * n[1] + (1 - b3) * abs(gb)]
        g = [ga, gb * n[0] / n[1]]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        denom = max(math.sqrt(vi / (1 - b2**t)) + eps for vi in v)
        x -= 0.1 * sum(mi / (1 - b1**t) for mi in m) / denom
        torch.testing.assert_close(p.detach(), torch.tensor([x]))


def test_weight_decay_shrinks_the_parameters():
    p = nn.Parameter(torch.tensor([2.0, -2.0]))
    method = _method(weight_decay=0.1)
    opt = method.build_optimizer([p], lr=0.01)
    for _ in range(3):
        losses = torch.stack([0 * p.sum() + 1, 0 * p.sum() + 1])  # no gradient but the decay
        opt.zero_grad()
        method.backward(StepContext(losses, features=None, shared_params=[p], task_params=[[], []]))
        opt.step()
    assert p[0] < 2.0 and p[1] > -2.0


@pytest.mark.parametrize(
    ("ranks", "problem"),
    [
        ([1.0, -1.0], r"weights must be >= 0, got \[1\.0, -1\.0\]"),
        ([1.0], r"expected 2 values \(one per task\), got 1"),
        ([0.0, 0.0], r"weights must not all be zero"),
    ],
)
def test_bad_ranks_are_one_line_errors_naming_the_method_and_key(ranks, problem):
    method = build_method("mtadam", weights=ranks)
    with pytest.raises(MethodError, match=rf"^method mtadam: weights: {problem}$"):
        method.setup(["a", "b"])
