"""Per-task gradients through one pass over the heads (``head_inputs``): the same Jacobian, task
gradients, representation gradients and updates as without, each head traversed once; the
trainer passes them in MTL to the methods that need per-task gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalarize.data import load_benchmark
from scalarize.methods import StepContext, build_method
from scalarize.models import build_model
from scalarize.models.multitask import MultiTaskModel
from scalarize.train import TrainConfig, Trainer

ENGINES = ("loop", "batched")


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(num_tasks=3):
    """A trunk and heads that count the backward passes through them."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU())
    heads = {f"t{i}": nn.Linear(6, 2) for i in range(num_tasks)}
    model = MultiTaskModel(trunk, heads)
    model.calls = [0] * num_tasks
    for i, head in enumerate(model.heads.values()):
        head.register_full_backward_hook(lambda *_, i=i: model.calls.__setitem__(i, model.calls[i] + 1))
    return model


def _context(model, engine, split, x=None):
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1)) if x is None else x
    head_inputs = None
    if split:
        features, head_inputs, outputs = model.forward_with_head_inputs(x)
    else:
        features, outputs = model(x)
    losses = torch.stack([((out - i) ** 2).mean() for i, out in enumerate(outputs.values())])
    return StepContext(
        losses,
        features=features,
        shared_params=model.shared_parameters(),
        task_params=model.task_parameters(),
        gradient_engine=engine,
        head_inputs=head_inputs,
    )


def test_forward_with_head_inputs_matches_forward():
    model = _model()
    x = torch.randn(4, 5)
    features, outputs = model(x)
    features2, head_inputs, outputs2 = model.forward_with_head_inputs(x)
    torch.testing.assert_close(features2, features)
    assert head_inputs.shape == (3, *features.shape)
    for name in outputs:
        torch.testing.assert_close(outputs2[name], outputs[name])


@pytest.mark.parametrize("engine", ENGINES)
def test_same_gradients_with_and_without_head_inputs(engine):
    model = _model()
    ref, ctx = _context(model, "loop", False), _context(model, engine, True)
    torch.testing.assert_close(ctx.shared_jacobian(), ref.shared_jacobian())
    for mine, theirs in zip(ctx.task_gradients(), ref.task_gradients()):
        for a, b in zip(mine, theirs):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(ctx.feature_jacobian(), ref.feature_jacobian())
    layer = model.shared_parameters()[-2]
    torch.testing.assert_close(ctx.gradients_on(layer), ref.gradients_on(layer))


def test_each_head_is_traversed_once_for_the_jacobian_and_the_weighted_backward():
    model = _model()
    ctx = _context(model, "loop", True)
    ctx.shared_jacobian()
    ctx.feature_jacobian()
    assert model.calls == [1, 1, 1]
    weights = torch.tensor([0.2, 0.5, 0.3])
    ctx.backward_weighted(weights)
    assert model.calls == [1, 1, 1]  # the heads' pass is reused
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    reference = _context(model, "loop", False)
    (weights * reference.losses).sum().backward()
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)


@pytest.mark.parametrize("split", [True, False])
def test_backward_catches_the_weighted_representation_gradients(split):
    model = _model()
    weights = torch.tensor([0.2, 0.5, 0.3])
    plain = _context(model, "loop", False)
    reference = plain.gradients_on(plain.features) * weights.view(3, 1, 1)
    model.zero_grad(set_to_none=True)
    model.calls[:] = [0, 0, 0]
    ctx = _context(model, "loop", split)
    caught = ctx.backward_weighted_with_representation_gradients(weights)
    torch.testing.assert_close(caught, reference)
    if split:
        assert model.calls == [1, 1, 1]  # one pass: the model's own backward
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    (weights * _context(model, "loop", False).losses).sum().backward()
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)
    # the products back to a trunk layer are the per-task gradients on it, weighted
    layer = model.shared_parameters()[-2]
    products = ctx.representation_products(layer, caught)
    expected = _context(model, "loop", False).gradients_on(layer) * weights.view(3, 1, 1)
    torch.testing.assert_close(products, expected)


def test_head_inputs_must_match_the_tasks():
    model = _model()
    features, head_inputs, outputs = model.forward_with_head_inputs(torch.randn(4, 5))
    losses = torch.stack([o.mean() for o in outputs.values()])
    with pytest.raises(ValueError, match="head_inputs"):
        StepContext(
            losses[:2],
            features=features,
            shared_params=model.shared_parameters(),
            task_params=model.task_parameters()[:2],
            head_inputs=head_inputs,
        )


@pytest.mark.parametrize("name", ["mgda_ub", "gradnorm", "pcgrad", "mgda", "cagrad", "imtl_g"])
@pytest.mark.parametrize("engine", ENGINES)
def test_methods_make_the_same_update_with_head_inputs(name, engine):
    updates = {}
    for split in (False, True):
        model = _model()
        method = build_method(name, seed=3) if name == "pcgrad" else build_method(name)
        method.setup(["a", "b", "c"])
        method.backward(_context(model, engine if split else "loop", split))
        params = [*model.parameters(), *method.parameters()]
        updates[split] = [p.grad.clone() for p in params if p.grad is not None]
    assert len(updates[True]) == len(updates[False]) > 0
    for a, b in zip(updates[True], updates[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("name", "needs_split"), [("pcgrad", True), ("mgda_ub", True), ("uw", False)])
@pytest.mark.parametrize("benchmark_name", ["multimnist", "digits"])
def test_the_trainer_passes_head_inputs_in_mtl_to_gradient_methods(
    tmp_path, monkeypatch, name, needs_split, benchmark_name
):
    seen = []
    original = StepContext.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.head_inputs is not None)

    monkeypatch.setattr(StepContext, "__init__", spy)
    options = {"train_size": 200, "test_size": 50} if benchmark_name == "multimnist" else {}
    bench = load_benchmark(benchmark_name, **options)
    config = TrainConfig(
        name="h",
        benchmark={"name": benchmark_name, "options": options},
        model={"width": 0.25},
        method={"name": name},
        steps=2,
        batch_size=16,
        stl=False,
        device="cpu",
        output=str(tmp_path),
    )
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 1)
    Trainer(config, bench, model, build_method(name), progress=False).fit()
    assert seen and set(seen) == {needs_split and bench.setting == "mtl"}
