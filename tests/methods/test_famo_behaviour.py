"""FAMO with lower bounds b: the combined loss, its weights and the logit update by hand from
the shifted losses L − b + ε (a loss at its bound stays finite), the default max_norm 0 leaving
the gradient alone, and min_losses refused when it is not one number or one per task."""

import math

import pytest
import torch

from scalarize.methods import MethodError, build_method


def _method(tasks=("a", "b"), **options):
    method = build_method("famo", **options)
    method.setup(list(tasks))
    return method


def test_lower_bounds_shift_the_losses():
    method = _method(min_losses=[0.5, 1.0])
    losses = torch.tensor([1.5, 5.0], requires_grad=True)
    value = method.combine(losses)
    # shifted = (1, 4); z = (½, ½); c = 1 / (½/1 + ½/4) = 1.6; value = 0.8 (log 1 + log 4)
    assert math.isclose(value.item(), 0.8 * math.log(4.0), rel_tol=1e-5)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.min_losses, torch.tensor([0.5, 1.0]))


def test_one_number_is_every_tasks_bound():
    method = _method(tasks=("a", "b", "c"), min_losses=0.25)
    torch.testing.assert_close(method.min_losses, torch.full((3,), 0.25))


def test_a_loss_at_its_bound_stays_finite():
    method = _method(min_losses=[1.0, 0.0])
    value = method.combine(torch.tensor([1.0, 2.0]))
    assert torch.isfinite(value)
    weights = method.current_weights()
    # shifted = (1e-8, 2): c z_i / shifted_i with z = ½: weights ∝ (1e8, ½)
    torch.testing.assert_close(weights, torch.tensor([1e8, 0.5]) / (1e8 + 0.5))


def test_update_uses_the_shifted_losses():
    method = _method(min_losses=[0.5, 1.0], weight_decay=0.0)
    method.combine(torch.tensor([1.5, 5.0]))
    method.update(torch.tensor([1.0, 4.0]))
    # δ = (log 1 − log ½, log 4 − log 3) = (log 2, log 4/3): task a improved more, so its logit
    # falls by lr and b's rises by lr (Adam's first step has unit size per coordinate)
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
    method = _method(min_losses=[0.5, 1.0], weight_decay=0.0)
    method.combine(torch.tensor([1.5, 5.0]))
    method.update(torch.tensor([1.5, 2.0]))  # a: no change; b improved (4 → 1): a's logit rises
    assert method.logits[0] > 0 > method.logits[1]


def test_default_max_norm_leaves_the_gradient_alone(gradient_context):
    method = _method()
    ctx = gradient_context(torch.tensor([[30.0, 0.0], [0.0, 40.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([15.0, 20.0]))


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], "low", [0.0, float("nan")], [[0.0], [1.0, 2.0]]])
def test_bad_min_losses_are_refused_at_setup(value):
    method = build_method("famo", min_losses=value)
    with pytest.raises(MethodError) as error:
        method.setup(["a", "b"])
    assert str(error.value) == f"method famo: min_losses must be one number or 2 finite numbers, got {value!r}"


def test_an_update_to_a_loss_at_its_bound_stays_finite():
    method = _method(min_losses=[1.0, 0.0], weight_decay=0.0)
    method.combine(torch.tensor([2.0, 2.0]))
    method.update(torch.tensor([1.0, 1.0]))  # task a reached its bound: log(1e-8), finite
    assert torch.isfinite(method.logits).all()
    # δ_a = log 1 − log 1e-8 ≫ δ_b = log 2: a improved more, its logit falls
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
