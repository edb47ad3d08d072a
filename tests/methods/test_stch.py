"""STCH: the warm-up on log-losses, the reference point from the last warm-up epoch, and the
smoothed Tchebycheff value and weights by hand.

STCH's reported weights are the gradient of its objective for any temperature, and a task at
exactly zero loss keeps the objective and the weights finite (log(L + 1e-20), as in the
official code)."""

import math

import pytest
import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("stch", **options)
    method.setup(["a", "b"])
    return method


def test_warm_up_minimises_the_sum_of_log_losses():
    method = _method(warmup_epochs=2)
    losses = torch.tensor([2.0, 0.5], requires_grad=True)
    value = method.combine(losses)
    assert math.isclose(value.item(), math.log(2.0) + math.log(0.5), abs_tol=1e-6)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 2.0]))


def test_reference_is_the_last_warm_up_epochs_mean_losses():
    method = _method(warmup_epochs=2)
    method.end_epoch(0, torch.tensor([9.0, 9.0]))
    assert method.warming_up
    method.end_epoch(1, torch.tensor([2.0, 4.0]))
    assert not method.warming_up
    torch.testing.assert_close(method.reference, torch.tensor([2.0, 4.0]))
    method.end_epoch(2, torch.tensor([1.0, 1.0]))  # later epochs do not move it
    torch.testing.assert_close(method.reference, torch.tensor([2.0, 4.0]))


def test_smoothed_tchebycheff_by_hand():
    # ν = (2, 4), L = (1, 8): log(L/ν) = (log ½, log 2); μ = 1, T = 2:
    # value = 2 log(½ + 2) = 2 log 2.5; softmax = (0.2, 0.8); ∂/∂L_i = 2 p_i / L_i = (0.4, 0.2)
    method = _method(warmup_epochs=1)
    method.end_epoch(0, torch.tensor([2.0, 4.0]))
    losses = torch.tensor([1.0, 8.0], requires_grad=True)
    value = method.combine(losses)
    assert math.isclose(value.item(), 2 * math.log(2.5), rel_tol=1e-6)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.4, 0.2]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.4, 0.2]))


@pytest.mark.parametrize("mu", [0.5, 2.0])
def test_temperature(mu):
    method = _method(mu=mu, warmup_epochs=0)  # no warm-up: ν = 1
    losses = torch.tensor([1.0, math.e], requires_grad=True)
    value = method.combine(losses)
    expected = 2 * mu * math.log(math.exp(0.0) + math.exp(1.0 / mu))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_small_temperature_weighs_the_worst_task_only():
    method = _method(mu=0.01, warmup_epochs=0)
    losses = torch.tensor([1.0, 1.5, 1.2], requires_grad=True)
    method.setup(["a", "b", "c"])
    method.combine(losses).backward()
    assert losses.grad[1] > 0.99 * 3 / 1.5 and losses.grad[[0, 2]].abs().max() < 1e-6


def test_reference_survives_a_state_dict_round_trip():
    method = _method(warmup_epochs=1)
    method.end_epoch(0, torch.tensor([2.0, 4.0]))
    fresh = _method(warmup_epochs=1)
    fresh.load_state_dict(method.state_dict())
    assert not fresh.warming_up
    torch.testing.assert_close(fresh.reference, torch.tensor([2.0, 4.0]))


@pytest.mark.parametrize("mu", [0.5, 2.0])
def test_weights_by_hand_at_any_temperature(mu):
    # ν = (2, 4), L = (1, 8): log(L/ν) = (−log 2, log 2); p = softmax(log(L/ν)/μ); w_i = 2 p_i / L_i
    method = _method(mu=mu, warmup_epochs=1)
    method.end_epoch(0, torch.tensor([2.0, 4.0], dtype=torch.float64))
    assert method.reference.dtype == torch.float32  # the buffer keeps its dtype
    losses = torch.tensor([1.0, 8.0], requires_grad=True)
    value = method.combine(losses)
    a, b = math.exp(-math.log(2) / mu), math.exp(math.log(2) / mu)
    assert math.isclose(value.item(), 2 * mu * math.log(a + b), rel_tol=1e-6)
    expected = torch.tensor([2 * a / (a + b) / 1.0, 2 * b / (a + b) / 8.0])
    value.backward()
    torch.testing.assert_close(losses.grad, expected)
    torch.testing.assert_close(method.current_weights(), expected)


def test_a_task_at_zero_loss_stays_finite():
    method = _method(warmup_epochs=1)
    losses = torch.tensor([0.0, 2.0])
    value = method.combine(losses)  # warm-up: Σ log(L_i + 1e-20)
    assert math.isclose(value.item(), math.log(1e-20) + math.log(2.0), rel_tol=1e-6)
    torch.testing.assert_close(method.current_weights(), torch.tensor([1e20, 0.5]))
    method.end_epoch(0, torch.tensor([4.0, 2.0]))
    value = method.combine(losses)  # log(0/4 + 1e-20) = log 1e-20, log(2/2) = 0
    p0 = 1e-20 / (1e-20 + 1.0)
    assert math.isclose(value.item(), 2 * math.log(1e-20 + 1.0), rel_tol=1e-6, abs_tol=1e-12)
    # w_0 = 2 p_0 / (0 + 1e-20 ν_0) = 2 p_0 / 4e-20
    weights = method.current_weights()
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.tensor([2 * p0 / 4e-20, 2 * (1 - p0) / 2.0]))
