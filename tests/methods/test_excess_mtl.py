"""ExcessMTL: three steps by hand (AdaGrad excess risks, the first step as baseline, the
exponentiated update on the simplex), heads scaled by the weights, and torchjd's rule."""

import math

import torch
from torch import nn
from torchjd.aggregation import ExcessMTLWeighting

from scalarize.methods import StepContext, build_method


def _method(**options):
    method = build_method("excess_mtl", **options)
    method.setup(["a", "b"])
    return method


def _risk(grads, squares):
    return sum(g * g / math.sqrt(s + 1e-7) for g, s in zip(grads, squares))


def test_three_steps_by_hand(gradient_context):
    method = _method(robust_step_size=1.0)
    steps = [[[1.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]]]
    squares = [[0.0, 0.0], [0.0, 0.0]]
    w = [0.5, 0.5]
    baseline = None
    for k, rows in enumerate(steps):
        ctx = gradient_context(torch.tensor(rows, dtype=torch.float64))
        method.backward(ctx)
        squares = [[s + g * g for s, g in zip(sq, row)] for sq, row in zip(squares, rows)]
        risks = [_risk(row, sq) for row, sq in zip(rows, squares)]
        if k == 0:
            baseline = risks  # the first step: baseline, weights stay uniform
        else:
            e = [wi * math.exp(r / b) for wi, r, b in zip(w, risks, baseline)]
            w = [x / sum(e) for x in e]
        d = [w[0] * rows[0][j] + w[1] * rows[1][j] for j in range(2)]
        torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(method.current_weights(), torch.tensor(w, dtype=torch.float64))
    assert abs(sum(w) - 1) < 1e-12 and w[0] > 0.8  # task a's excess risk grew most


def test_warm_up_averages_the_baseline(gradient_context):
    method = _method(warmup_steps=2)
    for rows in ([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [0.0, 2.0]]):
        method.backward(gradient_context(torch.tensor(rows, dtype=torch.float64)))
        torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 0.5], dtype=torch.float64))
    r1 = [_risk([1.0, 0.0], [1.0, 0.0]), _risk([0.0, 2.0], [0.0, 4.0])]
    r2 = [_risk([3.0, 0.0], [10.0, 0.0]), _risk([0.0, 2.0], [0.0, 8.0])]
    torch.testing.assert_close(
        method.baseline, torch.tensor([(a + b) / 2 for a, b in zip(r1, r2)], dtype=torch.float64)
    )


def test_heads_are_scaled_by_the_task_weights():
    method = _method(robust_step_size=1.0)
    w = nn.Parameter(torch.tensor([0.0, 0.0]))
    head = nn.Parameter(torch.tensor([1.0]))
    for rows in ([[1.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [0.0, 1.0]]):
        head.grad = None
        losses = torch.stack([rows[0][0] * w[0] + rows[0][1] * w[1] + head[0], rows[1][0] * w[0] + rows[1][1] * w[1]])
        method.backward(StepContext(losses, features=None, shared_params=[w], task_params=[[head], []]))
    torch.testing.assert_close(head.grad, method.current_weights()[:1])


def test_same_weights_as_torchjd_with_one_warm_up_step():
    gen = torch.Generator().manual_seed(0)
    ours = _method(robust_step_size=0.5)
    theirs = ExcessMTLWeighting(robust_step_size=0.5, n_warmup_steps=1)
    for _ in range(5):
        G = torch.randn(2, 6, generator=gen, dtype=torch.float64)
        ours.aggregate(G, torch.ones(2))
        expected = theirs(G)
        torch.testing.assert_close(ours.loss_weights, expected, rtol=1e-6, atol=1e-9)
