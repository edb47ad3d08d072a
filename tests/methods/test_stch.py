"""STCH: the warm-up on log-losses, the reference point from the last warm-up epoch, and the
smoothed Tchebycheff value and weights by hand."""

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
