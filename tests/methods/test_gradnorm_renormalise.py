"""GradNorm renormalises its weights after every applied step, whatever optimizer moved them:
fused optimizers (the trainer's default where torch has one) update parameters in place without
bumping the tensors' version counters, so "unchanged since renormalised" is told by value."""

import pytest
import torch

from scalarize.methods import StepContext, build_method


def _step(method, optimizer, W):
    losses = torch.stack([(W**2).sum(), 3 * W.sum()])
    ctx = StepContext(losses, features=None, shared_params=[W], task_params=[[], []])
    optimizer.zero_grad(set_to_none=True)
    method.backward(ctx)
    optimizer.step()
    method.after_step(ctx)


@pytest.mark.parametrize("fused", [False, True])
def test_the_weights_sum_to_the_task_count_after_every_step(fused):
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    W = torch.nn.Parameter(torch.tensor([0.5, -1.0]))
    optimizer = torch.optim.Adam([W, *method.parameters()], lr=0.3, fused=fused)
    for _ in range(4):
        before = method.loss_weights.detach().clone()
        _step(method, optimizer, W)
        w = method.loss_weights.detach()
        assert not torch.equal(w, before)  # the step moved them ...
        torch.testing.assert_close(w.sum(), torch.tensor(2.0))  # ... and they were renormalised


def test_renormalising_unchanged_weights_is_skipped():
    """Renormalising twice is not a bitwise no-op, so it happens once per change."""
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    with torch.no_grad():
        method.loss_weights.copy_(torch.tensor([0.7, 1.9]))
    method.renormalise()
    once = method.loss_weights.detach().clone()
    method.renormalise()
    assert torch.equal(method.loss_weights.detach(), once)
    with torch.no_grad():
        method.loss_weights.mul_(3.0)
    method.renormalise()
    torch.testing.assert_close(method.loss_weights.detach().sum(), torch.tensor(2.0))


def test_loaded_weights_are_taken_as_renormalised():
    """A checkpoint holds the weights of an applied (renormalised) step: loading them does not
    renormalise them again, so a resumed run equals the uninterrupted one bit for bit."""
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    with torch.no_grad():
        method.loss_weights.copy_(torch.tensor([0.7, 1.9]))
    method.renormalise()
    state = {k: v.clone() for k, v in method.state_dict().items()}
    other = build_method("gradnorm")
    other.setup(["a", "b"])
    other.load_state_dict(state)
    other.renormalise()
    assert torch.equal(other.loss_weights.detach(), state["loss_weights"])
