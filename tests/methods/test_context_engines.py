"""StepContext's per-task gradients against plain autograd, for every way of computing them: both
engines, with and without ``head_inputs``, an fp16 loss scale, and two identical ranks (one
process on the batch twice over). Also the engine choice, the task outputs it differentiates,
and its refusals."""

import itertools

import pytest
import torch
from torch import nn

from scalarize.methods import StepContext
from scalarize.methods.context import resolve_gradient_engine, task_outputs


class TwinRanks:
    """Two ranks holding the same shard: the sum over the ranks is twice the value."""

    world = 2

    def sum(self, tensor):
        return tensor * 2


class Model(nn.Module):
    """A trunk, a shared parameter no loss reaches, three heads (one with an unused parameter)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        self.spare = nn.Parameter(torch.zeros(2))
        self.heads = nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 2), nn.Linear(4, 1)])
        self.unused = nn.Parameter(torch.zeros(3))

    def shared(self):
        return [*self.trunk.parameters(), self.spare]

    def own(self):
        return [
            list(self.heads[0].parameters()),
            [*self.heads[1].parameters(), self.unused],
            list(self.heads[2].parameters()),
        ]

    def losses(self, x, head_inputs=False):
        z = self.trunk(x)
        rows = z.unsqueeze(0).expand(3, *z.shape) if head_inputs else None
        outs = [head(rows[i] if head_inputs else z) for i, head in enumerate(self.heads)]
        losses = torch.stack([(outs[0] ** 2).mean(), ((outs[1] - 1) ** 2).mean(), (outs[2] - 0.5).abs().mean()])
        return z, rows, losses


X = torch.linspace(-1, 1, 18).reshape(6, 3)
X2 = torch.linspace(1, -0.5, 18).reshape(6, 3)
W = torch.tensor([0.5, 2.0, -1.0])


def _reference(x):
    """Per-task gradients by one ``autograd.grad`` per task and parameter list, in one process."""
    model = Model()
    _, _, losses = model.losses(x)
    shared, own = model.shared(), model.own()
    jacobian, heads = [], []
    for i in range(3):
        grads = torch.autograd.grad(losses[i], shared + own[i], retain_graph=True, allow_unused=True)
        jacobian.append(
            torch.cat(
                [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, shared + own[i])][
                    : len(shared)
                ]
            )
        )
        heads.append(grads[len(shared) :])
    weighted = torch.autograd.grad((W * losses).sum(), list(model.parameters()), allow_unused=True)
    return torch.stack(jacobian), heads, weighted, losses.detach()


CASES = list(itertools.product(["loop", "batched"], [False, True], [None, 4.0], [False, True]))


def _context(model, engine, split, scale, ranks, x=X, **options):
    z, rows, losses = model.losses(x, head_inputs=split)
    return StepContext(
        losses,
        features=z,
        shared_params=model.shared(),
        task_params=model.own(),
        gradient_engine=engine,
        head_inputs=rows,
        loss_scale=scale,
        params=list(model.parameters()),
        reducer=TwinRanks() if ranks else None,
        **options,
    )


@pytest.mark.parametrize(("engine", "split", "scale", "ranks"), CASES)
def test_jacobian_and_task_gradients_as_autograd(engine, split, scale, ranks):
    jacobian, heads, _, losses = _reference(torch.cat([X, X]) if ranks else X)
    model = Model()
    ctx = _context(model, engine, split, scale, ranks)
    torch.testing.assert_close(ctx.losses.detach(), losses)
    out = ctx.shared_jacobian()
    assert out.shape == (3, 4 * 3 + 4 + 2)
    torch.testing.assert_close(out, jacobian)
    assert ctx.shared_jacobian() is out  # computed once
    grads = ctx.task_gradients()
    for i in range(3):
        for got, want in zip(grads[i], heads[i]):
            if want is None:
                assert got is None or (got == 0).all()
            else:
                torch.testing.assert_close(got, want)
    # heads' gradients scaled per task, accumulated into .grad (twice: added)
    ctx.backward_task_specific(W)
    ctx.backward_task_specific(W)
    for i, params in enumerate(model.own()):
        for param, want in zip(params, heads[i]):
            if want is None:
                assert param.grad is None
            else:
                torch.testing.assert_close(param.grad, 2 * W[i] * want)
    # the gradient on one parameter, by the same engine
    layer = model.trunk[0].weight
    per_task = ctx.gradients_on(layer)
    assert per_task.shape == (3, 4, 3)
    torch.testing.assert_close(per_task.flatten(1), jacobian[:, :12])


@pytest.mark.parametrize(("engine", "split", "scale", "ranks"), CASES)
def test_weighted_backward_as_autograd(engine, split, scale, ranks):
    _, _, weighted, _ = _reference(torch.cat([X, X]) if ranks else X)
    model = Model()
    ctx = _context(model, engine, split, scale, ranks)
    if split:
        ctx.shared_jacobian()  # the head pass is then reused
    ctx.backward_weighted(W)
    for param, want in zip(model.parameters(), weighted):
        if want is None:
            assert param.grad is None or (param.grad == 0).all()
        else:
            torch.testing.assert_close(param.grad, want)


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_task_gradients_asked_first_as_autograd(engine):
    """``task_gradients()`` on a fresh context (no Jacobian asked before) takes its own passes;
    the context also carries the step and epoch it was made for, for a method to read."""
    _, heads, _, _ = _reference(X)
    ctx = _context(Model(), engine, False, None, False, step=7, epoch=2)
    assert (ctx.step, ctx.epoch) == (7, 2)
    grads = ctx.task_gradients()
    for i in range(3):
        for got, want in zip(grads[i], heads[i]):
            if want is not None:
                torch.testing.assert_close(got, want)


def test_the_loss_scale_keeps_fp16_gradients_that_would_underflow():
    """Under fp16 autocast the backward runs in half precision: a gradient of 1e-8 on the way
    down is below float16's smallest value (6e-8) and vanishes, unless the backward is seeded with
    the loss scale (here 2¹⁴: 2¹⁶ itself overflows float16) and unscaled in the parameter's float32
    at the end."""
    weight = nn.Parameter(torch.ones(2))

    def jacobian(scale):
        half = weight.half() * 1e-4  # float16 activations
        losses = torch.stack([(half[0] * 1e-4).float(), (half[1] * 1e-4).float()])
        return StepContext(
            losses, features=None, shared_params=[weight], task_params=[[], []], loss_scale=scale
        ).shared_jacobian()

    assert (jacobian(None) == 0).all()  # underflowed
    torch.testing.assert_close(jacobian(2.0**14), torch.diag(torch.full((2,), 1e-8)), rtol=2e-3, atol=0)


def test_unweighted_task_gradients_and_the_shared_gradient():
    _, heads, _, _ = _reference(X)
    model = Model()
    ctx = _context(model, "loop", False, None, False)
    ctx.backward_task_specific()  # takes the Jacobian's passes first
    torch.testing.assert_close(model.heads[0].weight.grad, heads[0][0])
    direction = torch.arange(18, dtype=torch.float64)
    ctx.set_shared_gradient(direction)
    ctx.set_shared_gradient(direction)
    torch.testing.assert_close(model.trunk[0].weight.grad, 2 * direction[:12].view(4, 3).float())
    torch.testing.assert_close(model.trunk[0].bias.grad, 2 * direction[12:16].float())
    torch.testing.assert_close(model.spare.grad, 2 * direction[16:].float())
    assert model.spare.grad.dtype == torch.float32


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_independent_jacobians(engine):
    model = Model()
    ctx = _context(model, engine, False, None, False)
    assert not ctx.has_independent_batches
    same = ctx.independent_jacobians(2)
    assert len(same) == 2
    for jacobian in same:
        torch.testing.assert_close(jacobian, ctx.shared_jacobian())
    other, _, _, _ = _reference(X2)
    ctx = _context(model, engine, False, None, False, independent_losses=lambda: model.losses(X2)[2])
    assert ctx.has_independent_batches
    drawn = ctx.independent_jacobians(3)
    assert len(drawn) == 3
    for jacobian in drawn:
        torch.testing.assert_close(jacobian, other)
        assert not jacobian.requires_grad


def test_engine_choice():
    dense = [nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(2))]
    conv = [nn.Parameter(torch.zeros(2, 1, 3, 3)), nn.Parameter(torch.zeros(2))]
    assert resolve_gradient_engine("auto", dense) == "batched"
    assert resolve_gradient_engine("auto", conv) == "loop"
    assert resolve_gradient_engine("auto", []) == "loop"
    assert resolve_gradient_engine("loop", dense) == "loop"
    assert resolve_gradient_engine("batched", conv) == "batched"
    with pytest.raises(ValueError) as error:
        resolve_gradient_engine("vmap", dense)
    assert str(error.value) == "gradient_engine: must be one of auto, loop, batched, got 'vmap'"


def test_task_outputs_are_the_stacked_losses_only():
    a = nn.Parameter(torch.tensor(2.0))
    stacked = torch.stack([a * 3, a**2])
    edges = task_outputs(stacked)
    assert edges is not None and len(edges) == 2
    assert task_outputs(torch.cat([(a * 3).view(1), (a**2).view(1)])) is None  # not a stack
    assert task_outputs(torch.stack([a, a * 2])) is None  # a leaf among them
    assert task_outputs(torch.stack([a * 3, a**2]).detach()) is None
    assert task_outputs(torch.stack([a * 3, a**2]).view(1, 2)) is None
    # a list of losses is taken as the task outputs
    ctx = StepContext([a * 3, a**2], features=None, shared_params=[a], task_params=[[], []])
    torch.testing.assert_close(ctx.shared_jacobian(), torch.tensor([[3.0], [4.0]]))


def test_refusals():
    model = Model()
    z, _, losses = model.losses(X)
    ctx = StepContext(losses, features=z, shared_params=[], task_params=model.own())
    with pytest.raises(RuntimeError) as error:
        ctx.shared_jacobian()
    assert str(error.value) == "this model has no shared parameters"
    with pytest.raises(ValueError) as error:
        StepContext(
            losses,
            features=z,
            shared_params=model.shared(),
            task_params=model.own(),
            head_inputs=z.unsqueeze(0).expand(2, *z.shape),
        )
    assert str(error.value) == "head_inputs: needs features and a [T, *features.shape] tensor (T task losses)"
    with pytest.raises(ValueError):
        StepContext(
            losses,
            features=None,
            shared_params=model.shared(),
            task_params=model.own(),
            head_inputs=z.unsqueeze(0).expand(3, *z.shape),
        )


def test_loss_scale_with_the_loop_engine_and_stacked_losses():
    """Regression: with an fp16 loss scale, the loop engine differentiated a task's gradient edge
    (a named tuple) as if it were a sequence of outputs, and failed."""
    a = nn.Parameter(torch.tensor([1.0, 2.0]))
    losses = torch.stack([(a * 3).sum(), (a**2).sum()])
    ctx = StepContext(
        losses, features=None, shared_params=[a], task_params=[[], []], gradient_engine="loop", loss_scale=4.0
    )
    torch.testing.assert_close(ctx.shared_jacobian(), torch.tensor([[3.0, 3.0], [2.0, 4.0]]))


def test_gradients_accumulate_under_a_loss_scale():
    """Like ``loss.backward()``, a scaled backward adds to ``.grad`` (gradient accumulation)."""
    a = nn.Parameter(torch.tensor([1.0, 2.0]))
    for scale in (None, 8.0):
        a.grad = None
        for _ in range(2):
            losses = torch.stack([(a * 3).sum(), (a**2).sum()])
            ctx = StepContext(losses, features=None, shared_params=[a], task_params=[[], []], loss_scale=scale)
            ctx.backward(losses.sum())
        torch.testing.assert_close(a.grad, 2 * torch.tensor([5.0, 7.0]))


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_unreached_tensors_get_zero_rows(engine):
    model = Model()
    ctx = _context(model, engine, False, None, False)
    torch.testing.assert_close(ctx.gradients_on(model.spare), torch.zeros(3, 2))
    ctx = _context(model, engine, True, None, False)
    weighted = ctx.backward_weighted_with_representation_gradients(W)
    products = ctx.representation_products(model.spare, weighted)
    assert products.shape == (3, 2) and (products == 0).all()


def test_weighted_backward_with_head_inputs_before_any_jacobian():
    _, _, weighted, _ = _reference(X)
    model = Model()
    ctx = _context(model, "loop", True, None, False)
    ctx.backward_weighted(W)  # no head pass taken yet: one plain backward
    for param, want in zip(model.parameters(), weighted):
        if want is not None:
            torch.testing.assert_close(param.grad, want)
