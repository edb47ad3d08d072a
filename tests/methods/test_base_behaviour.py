"""The method protocol's defaults: a bare method's hooks and what it reports, the messages of
what it does not implement, the gradient family's backward, and weight normalisation by hand
(huge weights included)."""

import pytest
import torch
from torch import nn

from scalarize.methods import GradientMethod, Method, MethodError, StepContext
from scalarize.methods.base import LOSSES, NEEDS, SHARED_GRADIENTS, normalize_weights


class Bare(Method):
    name = "bare"


class Mean(GradientMethod):
    name = "mean"

    def aggregate(self, gradients, losses):
        return gradients.mean(dim=0)


def test_a_bare_methods_defaults():
    method = Bare()
    assert method.task_names == [] and method.setting == "mtl"
    assert method.needs == frozenset({LOSSES})
    method.setup(["a", "b"], "mdl")
    assert method.task_names == ["a", "b"] and method.setting == "mdl" and method.num_tasks == 2
    assert method.sampling_weights() is None and method.current_weights() is None
    assert method.objective_weights() is None
    assert method.after_step(None) is None and method.end_epoch(0, torch.ones(2)) is None
    with pytest.raises(NotImplementedError) as error:
        method.combine(torch.ones(2))
    assert str(error.value) == "Bare implements neither combine nor backward"
    with pytest.raises(NotImplementedError) as error:
        method.build_optimizer([], 0.1)
    assert str(error.value) == "Bare does not bring its own optimizer"
    with pytest.raises(NotImplementedError) as error:
        method.draw_preference()
    assert str(error.value) == "Bare takes no preference input"
    with pytest.raises(NotImplementedError):
        GradientMethod().aggregate(torch.ones(2, 3), torch.ones(2))


def test_needs_vocabulary():
    assert NEEDS == {
        "losses",
        "shared_gradients",
        "feature_gradients",
        "after_step",
        "own_optimizer",
        "independent_batches",
        "preference_input",
    }
    assert Mean.needs == {LOSSES, SHARED_GRADIENTS}


def test_the_gradient_family_writes_the_aggregate_and_the_heads_gradients():
    theta = nn.Parameter(torch.zeros(2))
    head = nn.Parameter(torch.tensor([1.0]))
    losses = torch.stack([theta[0] * 2 + head[0] ** 2, theta[1] * 4])
    ctx = StepContext(losses, features=None, shared_params=[theta], task_params=[[head], []])
    method = Mean()
    method.setup(["a", "b"])
    method.backward(ctx)
    torch.testing.assert_close(theta.grad, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(head.grad, torch.tensor([2.0]))


def test_normalize_weights_by_hand():
    torch.testing.assert_close(normalize_weights([3.0, 1.0], 2), torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(normalize_weights([1e308, 1e308], 2), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(normalize_weights(torch.tensor([[0.0, 2.0]]), 2), torch.tensor([0.0, 1.0]))
    assert normalize_weights([1, 1], 2).dtype == torch.get_default_dtype()
    with pytest.raises(MethodError, match=r"^sweep\.weights: weights must be >= 0, got \[1\.0, -1\.0\]$"):
        normalize_weights([1.0, -1.0], 2, key="sweep.weights")  # the key names the setting at fault
