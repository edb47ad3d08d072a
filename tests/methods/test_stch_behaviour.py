"""STCH's reported weights are the gradient of its objective for any temperature, and a task at
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
