"""Uncertainty weighting: the loss at known log-variances, its gradient, its weights."""

import math

import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("uw", **options)
    method.setup(["a", "b"])
    return method


def test_loss_at_known_log_variances():
    method = _method()
    with torch.no_grad():
        method.log_var.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = torch.tensor([2.0, 3.0])
    expected = 0.5 * 2.0 + 0.0 + 0.5 * 0.5 * 3.0 + 0.5 * math.log(2.0)
    assert math.isclose(method.combine(losses).item(), expected, rel_tol=1e-6)
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 0.25]))


def test_gradient_drives_sigma_squared_to_the_loss():
    # d/ds (½ e^{-s} L + ½ s) = ½ (1 − e^{-s} L): zero at e^{s} = L.
    method = _method()
    losses = torch.tensor([2.0, 3.0], requires_grad=True)
    method.combine(losses).backward()
    torch.testing.assert_close(method.log_var.grad, torch.tensor([0.5 - 1.0, 0.5 - 1.5]))
    torch.testing.assert_close(losses.grad, torch.tensor([0.5, 0.5]))


def test_classification_form_and_initial_value():
    method = _method(form="classification", init=-0.5)
    losses = torch.tensor([2.0, 3.0])
    s = -0.5
    expected = math.exp(-s) * 5.0 + 2 * 0.5 * s
    assert math.isclose(method.combine(losses).item(), expected, rel_tol=1e-6)
    torch.testing.assert_close(method.current_weights(), torch.full((2,), math.exp(0.5)))


def test_log_variances_are_parameters_for_the_trainer_optimizer():
    method = _method()
    assert [p.shape for p in method.parameters()] == [torch.Size([2])]
    assert "scalarizer.log_var" in method.state_dict()


def test_three_sgd_steps_by_hand():
    """s ← s − lr ∂/∂s (½ e^{−s} L + ½ s) = s − lr · ½ (1 − e^{−s} L), with the losses given."""
    method = _method()
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    s = [0.0, 0.0]
    for losses in ([2.0, 0.5], [1.5, 0.5], [1.0, 0.25]):
        value = method.combine(torch.tensor(losses))
        expected = sum(0.5 * math.exp(-si) * li + 0.5 * si for si, li in zip(s, losses))
        assert math.isclose(value.item(), expected, rel_tol=1e-6)
        opt.zero_grad()
        value.backward()
        opt.step()
        s = [si - 0.5 * 0.5 * (1 - math.exp(-si) * li) for si, li in zip(s, losses)]
        torch.testing.assert_close(method.log_var.detach(), torch.tensor(s))
        torch.testing.assert_close(method.current_weights(), torch.tensor([0.5 * math.exp(-si) for si in s]))
    assert s[0] > 0 > s[1]  # σ² grows for the larger loss, shrinks for the smaller
