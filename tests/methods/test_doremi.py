"""DoReMi-style group-DRO mixture: one and two steps by hand, the online reference, the options."""

import math

import pytest
import torch
from torch import nn

from scalarize.methods import MethodError, StepContext, build_method


def _method(**options):
    method = build_method("doremi", **options)
    method.setup(["d1", "d2"], "mdl")
    return method


def _context(losses, fractions):
    theta = nn.Parameter(torch.zeros(2))
    values = torch.as_tensor(losses) + theta  # d loss_d / d theta = e_d
    return StepContext(
        values, features=None, shared_params=[theta], task_params=[], batch_fractions=torch.as_tensor(fractions)
    ), theta


def test_two_steps_by_hand_with_given_reference_losses():
    method = _method(reference_losses=[1.0, 1.0])
    context, theta = _context([2.0, 1.5], [0.25, 0.75])
    method.backward(context)
    # the batch's plain mean: the fractions weigh the domain losses
    torch.testing.assert_close(theta.grad, torch.tensor([0.25, 0.75]))
    # λ = (1, 0.5); α' = softmax(log ½ + λ); α = 0.999 α' + 0.001 / 2
    first = 0.999 * math.exp(1) / (math.exp(1) + math.exp(0.5)) + 0.0005
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([first, 1 - first]))
    # domain 2 absent: it keeps its λ = 0.5; domain 1 is at its reference (λ = 0)
    method.backward(_context([1.0, 0.0], [1.0, 0.0])[0])
    a, b = first, (1 - first) * math.exp(0.5)
    second = 0.999 * a / (a + b) + 0.0005
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([second, 1 - second]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([second, 1 - second]))


def test_the_online_reference_is_the_running_minimum_of_an_ema():
    method = _method(reference_decay=0.5)
    method.backward(_context([1.0, 1.0], [0.5, 0.5])[0])  # reference = the first losses: no excess
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([0.5, 0.5]))
    method.backward(_context([3.0, 0.5], [0.5, 0.5])[0])
    # EMA (2, 0.75); reference min(1, 2) = 1 and min(1, 0.75) = 0.75; λ = (2, 0)
    torch.testing.assert_close(method.reference, torch.tensor([1.0, 0.75]))
    expected = 0.999 * math.exp(2) / (math.exp(2) + 1) + 0.0005
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([expected, 1 - expected]))


def test_average_mixture_is_the_mean_of_the_updates():
    method = _method(reference_losses=[0.0, 0.0], mixture="average")
    seen = []
    for losses in ([1.0, 0.0], [0.0, 2.0]):
        method.backward(_context(losses, [0.5, 0.5])[0])
        seen.append(method.weights.clone())
    torch.testing.assert_close(method.sampling_weights(), (seen[0] + seen[1]) / 2)


def test_non_finite_losses_leave_the_weights_alone():
    method = _method(reference_losses=[0.0, 0.0])
    method.update(torch.tensor([math.nan, math.inf]), torch.tensor([True, True]))
    assert torch.isfinite(method.weights).all()
    torch.testing.assert_close(method.weights, torch.tensor([0.5, 0.5]))


def test_mtl_is_refused_in_one_line():
    with pytest.raises(MethodError) as error:
        build_method("doremi").setup(["a", "b"])
    assert "multi-domain" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("value", [[1.0], [1.0, math.nan], "x", [1.0, 2.0, 3.0]])
def test_reference_losses_must_be_one_finite_number_per_domain(value):
    with pytest.raises(MethodError, match="reference_losses must be 2 finite numbers"):
        _method(reference_losses=value)
