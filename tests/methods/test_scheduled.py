"""Scheduled scalarization: the weights of the last schedule entry at or before each step."""

import torch

from scalarize.methods import build_method


def test_weights_switch_at_the_entry_step_itself(gradient_context):
    method = build_method("scheduled_scalarization", schedule=[(0, [1.0, 3.0]), (10, [3.0, 1.0])])
    method.setup(["a", "b"])
    torch.testing.assert_close(method.weights_at(0), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(method.weights_at(9), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(method.weights_at(10), torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(method.weights_at(11), torch.tensor([0.75, 0.25]))
    ctx = gradient_context(torch.eye(2))
    ctx.step = 10
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.75, 0.25]))
