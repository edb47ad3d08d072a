"""IMTL-L: the loss at known scales and the gradient that equalises the scaled losses."""

import math

import torch

from scalarize.methods import build_method


def test_loss_weights_and_gradient_at_known_scales():
    method = build_method("imtl_l")
    method.setup(["a", "b"])
    with torch.no_grad():
        method.log_scale.copy_(torch.tensor([0.0, math.log(2.0)]))
    losses = torch.tensor([2.0, 3.0], requires_grad=True)
    value = method.combine(losses)
    assert math.isclose(value.item(), 2.0 + 2.0 * 3.0 - math.log(2.0), rel_tol=1e-6)
    value.backward()
    # d/ds (e^s L − s) = e^s L − 1; d/dL = e^s
    torch.testing.assert_close(method.log_scale.grad, torch.tensor([1.0, 5.0]))
    torch.testing.assert_close(losses.grad, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 2.0]))
    assert len(list(method.parameters())) == 1
