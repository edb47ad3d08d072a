"""FAMO: the combined loss and its weights at known logits, one logit update by hand, and the
same rule as torchjd's FAMO.

FAMO with lower bounds b: the combined loss, its weights and the logit update by hand from
the shifted losses L − b + ε (a loss at its bound stays finite), the default max_norm 0 leaving
the gradient alone, and min_losses refused when it is not one number or one per task."""

import math

import pytest
import torch
from torchjd.scalarization import FAMO as TorchJDFAMO

from scalarize.methods import MethodError, build_method


def _method(tasks=("a", "b"), **options):
    method = build_method("famo", **options)
    method.setup(list(tasks))
    return method


@pytest.mark.parametrize(("min_losses", "losses"), [(None, [1.0, 4.0]), ([0.5, 1.0], [1.5, 5.0])])
def test_combined_loss_and_effective_weights(min_losses, losses):
    """Losses (1, 4), or (1.5, 5) above lower bounds (0.5, 1): the same shifted losses (1, 4)."""
    method = _method(**({} if min_losses is None else {"min_losses": min_losses}))
    losses = torch.tensor(losses, requires_grad=True)
    value = method.combine(losses)
    # z = (½, ½); c = 1 / (½/1 + ½/4) = 1.6; value = 1.6 (½ log 1 + ½ log 4)
    assert math.isclose(value.item(), 0.8 * math.log(4.0), rel_tol=1e-5)
    value.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(method.min_losses, torch.tensor(min_losses or [0.0, 0.0]))


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


def _adam(grads, lr=0.025, betas=(0.9, 0.999), eps=1e-8):
    """Adam's displacement after each of the given gradients (explicit formulas)."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        out.append(-lr * (m / (1 - betas[0] ** t)) / (math.sqrt(v / (1 - betas[1] ** t)) + eps))
    return out


def test_two_updates_by_hand_with_weight_decay():
    """ξ₁ = −ξ₂ by symmetry; each step's gradient on ξ_1 is z₁z₂(δ₁ − δ₂) + γ ξ₁."""
    gamma = 0.1
    method = _method(weight_decay=gamma)
    xi, m, v = 0.0, 0.0, 0.0
    for t, (before, after) in enumerate([((1.0, 4.0), (0.5, 3.0)), ((0.5, 3.0), (0.45, 1.5))], start=1):
        method.combine(torch.tensor(before))
        method.update(torch.tensor(after))
        z1 = 1 / (1 + math.exp(-2 * xi))  # softmax of (ξ, −ξ)
        delta = [math.log(b) - math.log(a) for b, a in zip(before, after)]
        g = z1 * (1 - z1) * (delta[0] - delta[1]) + gamma * xi
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        xi -= 0.025 * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        torch.testing.assert_close(method.logits, torch.tensor([xi, -xi]), atol=1e-7, rtol=1e-5)


def test_weight_decay_pulls_the_logits_toward_zero():
    method = _method(weight_decay=0.5)
    method.logits = torch.tensor([1.0, -1.0])
    method.combine(torch.tensor([1.0, 1.0]))
    method.update(torch.tensor([1.0, 1.0]))  # no loss changed: only the decay acts
    assert method.logits[0] < 1.0 and method.logits[1] > -1.0


def test_max_norm_clips_the_shared_gradient_only(gradient_context):
    from torch import nn

    from scalarize.methods import StepContext

    theta = nn.Parameter(torch.zeros(2))
    head = nn.Parameter(torch.zeros(1))
    losses = torch.stack([3 * theta[0] + 1 + 10 * head[0], 4 * theta[1] + 1])
    ctx = StepContext(losses, features=None, shared_params=[theta], task_params=[[head], []])
    method = _method(max_norm=1.0)
    method.backward(ctx)
    # unclipped: the effective weights (½, ½) give (1.5, 2): norm 2.5 → clipped to (0.6, 0.8)
    torch.testing.assert_close(theta.grad, torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(head.grad, torch.tensor([5.0]))  # heads are not clipped
    theta.grad = None
    _method().backward(gradient_context(torch.tensor([[3.0, 0.0], [0.0, 4.0]])))  # default: off


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
