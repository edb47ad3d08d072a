"""FAMO: the combined loss and its weights at known logits, one logit update by hand, and the
same rule as torchjd's FAMO."""

import math

import torch
from torchjd.scalarization import FAMO as TorchJDFAMO

from scalarize.methods import build_method


def _method(**options):
    method = build_method("famo", **options)
    method.setup(["a", "b"])
    return method


def test_combined_loss_and_effective_weights():
    method = _method()
    losses = torch.tensor([1.0, 4.0], requires_grad=True)
    value = method.combine(losses)
    # z = (½, ½); c = 1 / (½/1 + ½/4) = 1.6; value = 1.6 (½ log 1 + ½ log 4)
    assert math.isclose(value.item(), 0.8 * math.log(4.0), rel_tol=1e-5)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))


def test_logits_move_toward_the_task_that_improved_less():
    method = _method(weight_decay=0.0)
    method.combine(torch.tensor([1.0, 4.0]))
    method.update(torch.tensor([0.5, 3.0]))
    # δ = (log 2, log 4/3); J_softmaxᵀ δ = ½ (δ − mean δ) = (+0.1014, −0.1014); Adam's first
    # step moves each logit by lr against the sign of its gradient.
    torch.testing.assert_close(method.logits, torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
    z = method.task_weights()
    assert z[1] > z[0]


def test_after_step_uses_the_recomputed_losses(gradient_context):
    method = _method()
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 4.0]))
    ctx._recompute_losses = lambda: torch.tensor([0.5, 3.0])
    method.backward(ctx)
    method.after_step(ctx)
    assert method.logits[1] > method.logits[0]
    assert int(method.adam_steps) == 1


def test_logits_stay_out_of_the_trainer_optimizer():
    assert list(_method().parameters()) == []


def test_same_rule_as_torchjd():
    torch.manual_seed(0)
    ours, theirs = _method(), TorchJDFAMO(2)
    for _ in range(6):
        losses = torch.rand(2) + 0.5
        torch.testing.assert_close(ours.combine(losses), theirs(losses))
        after = losses * (0.5 + torch.rand(2))
        ours.update(after)
        theirs.update(after)
        torch.testing.assert_close(ours.logits, theirs._w.detach())
