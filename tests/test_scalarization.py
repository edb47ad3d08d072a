import pytest
import torch

from scalarize.methods import MethodError, Scalarization, StepContext, build_method


def test_weighted_sum_by_hand():
    method = Scalarization([1.0, 3.0])
    method.setup(["a", "b"])
    # weights are normalised to (0.25, 0.75): 0.25 * 2 + 0.75 * 4 = 3.5
    assert float(method.combine(torch.tensor([2.0, 4.0]))) == pytest.approx(3.5)
    assert method.current_weights().tolist() == [0.25, 0.75]


def test_uniform_by_default_and_gradient_is_the_weighted_sum():
    theta = torch.tensor([1.0, -2.0], requires_grad=True)
    losses = torch.stack([theta[0] ** 2, 3 * theta[1]])
    method = Scalarization()
    method.setup(["a", "b"])
    method.backward(StepContext(losses, features=None, shared_params=[theta], task_params=[[], []]))
    assert theta.grad.tolist() == [1.0, 1.5]  # 0.5 * (2 * 1) and 0.5 * 3


def test_mdl_uses_the_batch_shares_and_exposes_the_mixture():
    method = Scalarization([0.8, 0.2])
    method.setup(["mnist", "uci"], "mdl")
    assert method.sampling_weights().tolist() == pytest.approx([0.8, 0.2])
    theta = torch.tensor(1.0, requires_grad=True)
    losses = torch.stack([theta * 2, theta * 10])
    context = StepContext(
        losses, features=None, shared_params=[theta], task_params=[], batch_fractions=torch.tensor([0.75, 0.25])
    )
    method.backward(context)
    assert float(theta.grad) == pytest.approx(0.75 * 2 + 0.25 * 10)  # the plain batch mean


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0], "expected 2 values"), ([1.0, -1.0], ">= 0"), ([0.0, 0.0], "all be zero"), ([1.0, float("nan")], "finite")],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(MethodError, match=message):
        Scalarization(weights).setup(["a", "b"])


def test_state_dict_round_trip_and_registry():
    method = build_method("scalarization", weights=[2.0, 1.0])
    method.setup(["a", "b"])
    other = Scalarization()
    other.setup(["a", "b"])
    other.load_state_dict(method.state_dict())
    assert torch.allclose(other.weights, torch.tensor([2 / 3, 1 / 3]))
    with pytest.raises(MethodError, match="unknown method 'nope'"):
        build_method("nope")
