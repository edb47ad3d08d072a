"""The gradient layer under StepContext (scalarize.methods.gradients): every engine in
``ENGINES`` against plain autograd, on its own (no context), so that an engine added to the
registry is held to the same gradients with no list to edit; the loss scale and the reductions
as the context relies on them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalarize.methods.gradients import (
    ENGINES,
    GRADIENT_ENGINES,
    build_engine,
    reduction,
    resolve_gradient_engine,
    scale,
)
from scalarize.methods.gradients.engine import TaskLosses, task_outputs
from scalarize.methods.gradients.heads import catch_head_gradients, heads_backward

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(num_tasks=3):
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 5, dtype=torch.float64), nn.Tanh(), nn.Linear(5, 3, dtype=torch.float64))
    heads = [nn.Linear(3, 2, dtype=torch.float64) for _ in range(num_tasks)]
    x = torch.randn(6, 4, dtype=torch.float64)
    z = trunk(x)
    losses = [((h(z) - i) ** 2).mean() for i, h in enumerate(heads)]
    return trunk, heads, z, losses


def _reference(losses, inputs):
    return [torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True) for loss in losses]


def _autograd(*args, **options):
    return scale.grad(None, torch.zeros(()), *args, **options)


def test_the_engine_names_are_the_configs():
    assert GRADIENT_ENGINES == ("auto", *ENGINES)
    assert set(ENGINES) >= {"loop", "batched"}
    assert all(engine.name == name for name, engine in ENGINES.items())
    assert all(resolve_gradient_engine(name) == name for name in ENGINES)


@pytest.mark.parametrize("name", sorted(ENGINES))
@pytest.mark.parametrize("form", ["edges", "rows"])
def test_every_engine_gives_autograds_task_gradients(name, form):
    trunk, heads, z, losses = _problem()
    stacked = torch.stack(losses)
    outputs = task_outputs(stacked) if form == "edges" else None
    shared = list(trunk.parameters())
    own = [list(h.parameters()) for h in heads]
    rows, task_grads = build_engine(name, _autograd).task_gradients(TaskLosses(stacked, outputs), shared, own)
    for i, loss in enumerate(losses):
        expected = _reference([loss], [*shared, *own[i]])[0]
        for k in range(len(shared)):
            torch.testing.assert_close(rows[k][i], expected[k], rtol=1e-12, atol=1e-12)
        for got, want in zip(task_grads[i], expected[len(shared) :]):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_gives_autograds_products_and_none_where_unreached(name):
    trunk, heads, z, losses = _problem()
    spare = nn.Parameter(torch.ones(2, dtype=torch.float64))  # no path from z
    cotangents = torch.randn(3, *z.shape, dtype=torch.float64)
    rows = build_engine(name, _autograd).products(z, [trunk[0].weight, spare], cotangents)
    assert rows[1] is None
    for i, g in enumerate(cotangents):
        (want,) = torch.autograd.grad(z, [trunk[0].weight], grad_outputs=g, retain_graph=True)
        torch.testing.assert_close(rows[0][i], want, rtol=1e-12, atol=1e-12)


def test_the_loss_scale_seeds_and_unscales():
    trunk, heads, z, losses = _problem()
    weight = trunk[0].weight
    plain = scale.grad(None, losses[0], losses[0], [weight], retain_graph=True)[0]
    scaled = scale.grad(1024.0, losses[0], losses[0], [weight], retain_graph=True)[0]
    torch.testing.assert_close(scaled, plain, rtol=1e-12, atol=0)
    edge = task_outputs(torch.stack(losses))[1]  # a gradient edge: seeded with the scale itself
    want = scale.grad(None, losses[1], losses[1], [weight], retain_graph=True)[0]
    torch.testing.assert_close(scale.grad(8.0, losses[1], edge, [weight], retain_graph=True)[0], want)
    assert scale.unscale(None, weight) is weight
    torch.testing.assert_close(scale.unscale(4.0, weight * 4), weight)


def test_heads_backward_splits_at_the_representation():
    trunk, heads, z, _ = _problem()
    head_inputs = z.unsqueeze(0).expand(3, *z.shape)
    losses = torch.stack([((h(head_inputs[i]) - i) ** 2).mean() for i, h in enumerate(heads)])
    own = [list(h.parameters()) for h in heads]
    feature_grads, task_grads = heads_backward(_autograd, losses, head_inputs, own)
    for i in range(3):
        want = torch.autograd.grad(losses[i], [z, *own[i]], retain_graph=True)
        torch.testing.assert_close(feature_grads[i], want[0], rtol=1e-12, atol=1e-12)
        for got, w in zip(task_grads[i], want[1:]):
            torch.testing.assert_close(got, w, rtol=1e-12, atol=1e-12)
    caught = catch_head_gradients(head_inputs, lambda: losses.sum().backward(retain_graph=True))
    torch.testing.assert_close(caught, feature_grads, rtol=1e-12, atol=1e-12)
    assert catch_head_gradients(head_inputs, lambda: None) is None


class _TwoRanks:
    world = 2

    def sum(self, tensor):
        return tensor * 2


def test_one_process_reduces_nothing_and_identical_ranks_are_one_process():
    value = torch.tensor([1.0, 2.0], requires_grad=True)
    assert reduction.active(None) is None
    assert reduction.active(type("One", (), {"world": 1})()) is None
    for reducer in (None, _TwoRanks()):
        torch.testing.assert_close(reduction.global_losses(reducer, value), value)
        torch.testing.assert_close(reduction.global_values(reducer, value), value)
        assert reduction.mean(reducer, [value, None], [value, value])[1] is None
    torch.testing.assert_close(reduction.global_rows(_TwoRanks(), value), value / 2)
    torch.testing.assert_close(reduction.total(_TwoRanks(), value), value * 2)
    assert reduction.total(None, value) is value
