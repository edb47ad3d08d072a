"""StepContext's per-sample quantities on the shared representation, by hand: the gradients a
weighted backward sends into it (with and without ``head_inputs``, under an fp16 loss scale),
their norms and Gramian, the feature Jacobian, recomputed losses, and, across ranks, the same
quantities as one process on the global batch (two identical ranks = one process on the batch
twice over)."""

import pytest
import torch
from torch import nn

from scalarize.methods import StepContext


class TwinRanks:
    """A reducer for two ranks holding the same shard: the sum over the ranks is twice the value."""

    world = 2

    def __init__(self):
        self.calls = 0

    def sum(self, tensor):
        self.calls += 1
        return tensor * 2


def _model():
    from scalarize.models.multitask import MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), {"a": nn.Linear(4, 1), "b": nn.Linear(4, 2)})


X = torch.linspace(-1, 1, 15).reshape(5, 3)


def _losses(out):
    return torch.stack([(out["a"] ** 2).mean(), ((out["b"] - 1) ** 2).mean()])


def _context(model, x, split, **options):
    if split:
        z, head_inputs, out = model.forward_with_head_inputs(x)
    else:
        (z, out), head_inputs = model(x), None
    losses = _losses(out)
    ctx = StepContext(
        losses,
        features=z,
        shared_params=model.shared_parameters(),
        task_params=model.task_parameters(),
        head_inputs=head_inputs,
        recompute_losses=lambda: _losses(model(x)[1]),
        **options,
    )
    return ctx, z, losses


def _reference(x):
    """Per-task gradients on the features, one ``autograd.grad`` per task, and the gradient of
    ``Σ w_i L_i`` on every parameter, in one plain process."""
    model = _model()
    z, out = model(x)
    losses = _losses(out)
    rows = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0] for loss in losses])
    return model, rows, losses.detach()


W = torch.tensor([0.25, 2.0])


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("loss_scale", [None, 8.0])
def test_weighted_backward_returns_each_tasks_weighted_representation_gradient(split, loss_scale):
    ref_model, rows, ref_losses = _reference(X)
    model = _model()
    ctx, z, _ = _context(model, X, split, loss_scale=loss_scale)
    weighted = ctx.backward_weighted_with_representation_gradients(W.double())  # weights follow the losses
    assert weighted.shape == (2, 5, 4) and weighted.dtype == torch.float32
    torch.testing.assert_close(weighted, W.view(2, 1, 1) * rows)
    # .grad: the gradient of Σ w_i L_i
    ref_model.zero_grad()
    _, out = ref_model(X)
    (W * _losses(out)).sum().backward()
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    # the graph is kept: a product through the trunk still works afterwards
    layer = model.shared_parameters()[0]
    products = ctx.representation_products(layer, weighted)
    expected = torch.stack([torch.autograd.grad(z, layer, weighted[i], retain_graph=True)[0] for i in range(2)])
    torch.testing.assert_close(products, expected)
    # norms and Gramian over the batch
    flat = weighted.flatten(1)
    torch.testing.assert_close(ctx.sample_norms(weighted), flat.norm(dim=1))
    torch.testing.assert_close(ctx.sample_gramian(weighted), (flat @ flat.T).double())


def test_no_gradient_reaches_the_heads_inputs_gives_zeros():
    model = _model()
    z, head_inputs, _ = model.forward_with_head_inputs(X)
    heads = list(model.heads.values())
    losses = torch.stack([heads[0].bias.pow(2).sum(), heads[1].bias.pow(2).sum()])  # not through Z
    ctx = StepContext(
        losses,
        features=z,
        shared_params=model.shared_parameters(),
        task_params=model.task_parameters(),
        head_inputs=head_inputs,
    )
    weighted = ctx.backward_weighted_with_representation_gradients(torch.ones(2))
    assert weighted.shape == head_inputs.shape and (weighted == 0).all()
    torch.testing.assert_close(heads[1].bias.grad, 2 * heads[1].bias.detach())


@pytest.mark.parametrize("split", [True, False])
def test_feature_jacobian_is_flat_per_task(split):
    _, rows, _ = _reference(X)
    ctx, _, _ = _context(_model(), X, split)
    jacobian = ctx.feature_jacobian()
    assert jacobian.shape == (2, 20)
    torch.testing.assert_close(jacobian, rows.flatten(1))
    torch.testing.assert_close(ctx.feature_gramian(), (rows.flatten(1) @ rows.flatten(1).T).double())


def test_missing_features_or_recompute_are_clear_errors():
    model = _model()
    _, out = model(X)
    ctx = StepContext(
        _losses(out), features=None, shared_params=model.shared_parameters(), task_params=model.task_parameters()
    )
    with pytest.raises(RuntimeError) as error:
        ctx.feature_jacobian()
    assert str(error.value) == "this model exposes no shared representation"
    with pytest.raises(RuntimeError) as error:
        ctx.recompute_losses()
    assert str(error.value) == "this trainer cannot recompute losses"


def test_recompute_losses_under_the_current_parameters():
    model = _model()
    ctx, _, losses = _context(model, X, split=False)
    torch.testing.assert_close(ctx.recompute_losses(), losses.detach())
    with torch.no_grad():
        model.heads["a"].bias.add_(1.0)
    again = ctx.recompute_losses()
    assert not again.requires_grad
    torch.testing.assert_close(again, _losses(model(X)[1]).detach())


@pytest.mark.parametrize("split", [True, False])
def test_two_identical_ranks_are_one_process_on_the_batch_twice(split):
    """Rank-local rows are this rank's rows of the global batch's gradient (half the local one,
    the global batch being twice as large); norms, Gramian and recomputed losses are global."""
    twice = torch.cat([X, X])
    _, rows_global, losses_global = _reference(twice)
    reducer = TwinRanks()
    ctx, _, _ = _context(_model(), X, split, reducer=reducer)
    torch.testing.assert_close(ctx.losses.detach(), losses_global)
    weighted = ctx.backward_weighted_with_representation_gradients(W)
    expected_rows = W.view(2, 1, 1) * rows_global
    torch.testing.assert_close(weighted, expected_rows[:, :5])  # this rank's rows
    flat = expected_rows.flatten(1)
    torch.testing.assert_close(ctx.sample_norms(weighted), flat.norm(dim=1))
    torch.testing.assert_close(ctx.sample_gramian(weighted), (flat @ flat.T).double())
    torch.testing.assert_close(ctx.recompute_losses(), losses_global)
    ctx2, _, _ = _context(_model(), X, split, reducer=TwinRanks())
    torch.testing.assert_close(ctx2.feature_gramian(), (rows_global.flatten(1) @ rows_global.flatten(1).T).double())


def test_a_single_rank_reducer_is_not_used():
    reducer = TwinRanks()
    reducer.world = 1
    ctx, _, losses = _context(_model(), X, split=True, reducer=reducer)
    weighted = ctx.backward_weighted_with_representation_gradients(W)
    ctx.sample_norms(weighted), ctx.sample_gramian(weighted), ctx.recompute_losses()
    assert reducer.calls == 0
