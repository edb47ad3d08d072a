"""Gradient spaces (scalarize.methods.gradients.space): ``method.options.gradients:
representation`` for every gradient method in the registry (no list to edit), checked by hand on
a model whose trunk is linear, ``Z = X Wᵀ``: the trunk's update is ``d_Zᵀ X`` for the direction
``d_Z`` the method computes on the Jacobian of the losses with respect to ``Z``, written out."""

from __future__ import annotations

import pytest
import torch

from scalarize.methods import StepContext, available_methods, build_method
from scalarize.methods.base import INDEPENDENT_BATCHES, GradientMethod, MethodError
from scalarize.methods.registry import method_class

pytestmark = pytest.mark.usefixtures("one_thread")

GRADIENT_METHODS = [n for n in available_methods() if issubclass(method_class(n), GradientMethod)]


def _refused(name):
    cls = method_class(name)
    return INDEPENDENT_BATCHES in cls.needs or bool(getattr(cls, "_jacobian_state_keys", None))


OFFERED = [n for n in GRADIENT_METHODS if not _refused(n)]
T, B, D_IN, D = 3, 5, 4, 2


def _step(split):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, D_IN, generator=g, dtype=torch.float64)
    y = torch.randn(T, B, generator=g, dtype=torch.float64)
    weight = torch.nn.Parameter(torch.randn(D, D_IN, generator=g, dtype=torch.float64))
    heads = [torch.nn.Parameter(torch.randn(D, generator=g, dtype=torch.float64)) for _ in range(T)]
    z = x @ weight.T
    head_inputs = z.unsqueeze(0).expand(T, *z.shape) if split else None
    losses = torch.stack([(((head_inputs[i] if split else z) @ a - y[i]) ** 2).mean() for i, a in enumerate(heads)])
    context = StepContext(
        losses, features=z, shared_params=[weight], task_params=[[a] for a in heads], head_inputs=head_inputs
    )
    # by hand: ∂L_i/∂Z = (2/B) (Z a_i - y_i) a_iᵀ
    zd = z.detach()
    jacobian = torch.stack([(2 / B) * torch.outer(zd @ a.detach() - y[i], a.detach()) for i, a in enumerate(heads)])
    return context, weight, x, jacobian.flatten(1), losses.detach()


@pytest.mark.parametrize("split", [False, True], ids=["engine", "head_inputs"])
@pytest.mark.parametrize("name", OFFERED)
def test_the_trunks_update_is_the_methods_direction_on_the_representation(name, split):
    method = build_method(name, gradients="representation")
    method.setup([f"t{i}" for i in range(T)])
    reference = build_method(name)
    reference.setup([f"t{i}" for i in range(T)])
    context, weight, x, jacobian, losses = _step(split)
    torch.manual_seed(0)
    method.backward(context)
    torch.manual_seed(0)
    direction = reference.aggregate(jacobian, losses)  # d_Z, flattened [B·D]
    expected = direction.view(B, D).T @ x  # ∂/∂W <d_Z, X Wᵀ> = d_Zᵀ X
    torch.testing.assert_close(weight.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_every_gradient_method_takes_the_option_or_says_why_not(name):
    if _refused(name):
        with pytest.raises(MethodError, match="method.options.gradients"):
            build_method(name, gradients="representation")
    else:
        assert build_method(name, gradients="representation").gradients == "representation"
    assert build_method(name, gradients="parameters").gradients == "parameters"
    assert build_method(name).gradients == "parameters"
    with pytest.raises(MethodError, match="must be one of parameters, representation"):
        build_method(name, gradients="features")


def test_methods_that_aggregate_no_gradients_refuse_the_option():
    for name in sorted(set(available_methods()) - set(GRADIENT_METHODS)):
        with pytest.raises(MethodError, match="not a gradient method"):
            build_method(name, gradients="representation")


def test_the_parameter_space_is_unchanged_and_the_view_shares_the_step():
    context, weight, x, jacobian, _ = _step(split=True)
    view = context.in_gradient_space("representation")
    assert context.in_gradient_space("parameters") is context and view.in_gradient_space("representation") is view
    torch.testing.assert_close(view.shared_jacobian(), jacobian, rtol=1e-12, atol=1e-12)
    assert view.shared_params[0] is context.features and context.shared_params == [weight]
    assert context.shared_jacobian().shape == (T, weight.numel())
    with pytest.raises(RuntimeError, match="not in the representation space"):
        view.independent_jacobians(1)
