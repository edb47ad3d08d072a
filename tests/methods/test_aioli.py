"""Aioli: the probe schedule, the interaction matrix and the exponentiated-gradient step by hand."""

import math

import pytest
import torch
from torch import nn

from scalarize.methods import MethodError, StepContext, build_method


def _method(**options):
    options = {
        "lp_rounds": 1,
        "lp_steps": 1,
        "update_steps": 4,
        "one_hot_factor": 1.0,
        "normalize": False,
        "ema": 0.0,
        "eta": 1.0,
        **options,
    }
    method = build_method("aioli", **options)
    method.setup(["d1", "d2"], "mdl")
    return method


def test_the_probes_are_the_last_steps_of_each_round():
    method = _method(lp_steps=2, update_steps=6)
    assert [method.probed_domain(s) for s in range(8)] == [None, None, 0, 0, 1, 1, None, None]


def test_one_round_by_hand():
    method = _method()
    method.record(0, torch.tensor([1.0, 1.0]), torch.tensor([0.8, 0.9]), torch.tensor([True, True]))
    method.record(1, torch.tensor([1.0, 1.0]), torch.tensor([0.95, 0.7]), torch.tensor([True, True]))
    torch.testing.assert_close(method.gains, torch.tensor([[0.2, 0.05], [0.1, 0.3]]))
    method.end_round()
    # column sums (0.3, 0.35): p ∝ ½ exp(0.3), ½ exp(0.35)
    first = 1 / (1 + math.exp(0.05))
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([first, 1 - first]))
    assert not method.gains.any()
    # a second round multiplies in (no EMA): column sums (0.1, 0)
    method.record(0, torch.tensor([1.0, 1.0]), torch.tensor([0.9, 1.0]), torch.tensor([True, True]))
    method.end_round()
    a, b = first * math.exp(0.1), 1 - first
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([a / (a + b), b / (a + b)]))


def test_normalised_and_smoothed_rounds_by_hand():
    method = _method(normalize=True, ema=0.5, eta=2.0)
    first = torch.tensor([[0.2, -0.1], [0.3, 0.4]])
    method.gains = first.clone()
    method.end_round()
    a1 = (first + 0.1) / (first + 0.1).sum()  # shifted by the minimum, then summing to one
    torch.testing.assert_close(method.smoothed, a1)
    second = torch.tensor([[0.1, 0.1], [0.1, 0.3]])
    method.gains = second.clone()
    method.end_round()
    smoothed = 0.5 * second / second.sum() + 0.5 * a1
    torch.testing.assert_close(method.smoothed, smoothed)
    torch.testing.assert_close(method.sampling_weights(), torch.softmax(2.0 * smoothed.sum(0), 0))


def test_the_interaction_matrix_is_unmixed_from_the_probe_mixtures():
    method = _method(one_hot_factor=0.75)
    true = torch.tensor([[0.4, 0.1], [0.2, 0.3]])
    q = torch.tensor([[0.75, 0.25], [0.25, 0.75]])  # row j: probe j's mixture
    gains = true @ q.T  # G_ij = Σ_l q^j_l A_il
    torch.testing.assert_close(method.interaction(gains), true)


def test_a_probe_step_trains_the_probe_mixture_and_measures_the_same_batch():
    method = _method()
    theta = nn.Parameter(torch.zeros(2))
    for step in range(4):
        losses = torch.tensor([1.0, 2.0]) + theta
        after = torch.tensor([0.9, 1.5]) if step == 2 else torch.tensor([0.5, 1.9])
        context = StepContext(
            losses,
            features=None,
            shared_params=[theta],
            task_params=[],
            batch_fractions=torch.tensor([0.5, 0.5]),
            recompute_losses=lambda a=after: a,
        )
        theta.grad = None
        method.backward(context)
        expected = {2: [1.0, 0.0], 3: [0.0, 1.0]}.get(step, [0.5, 0.5])  # probes: q^j; else the batch mean
        torch.testing.assert_close(theta.grad, torch.tensor(expected))
        method.after_step(context)
    # probe 0 lowered (0.1, 0.5), probe 1 (0.5, 0.1): column sums 0.6 each, p stays uniform; gains reset
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([0.5, 0.5]))
    assert int(method.steps) == 4 and not method.gains.any()


def test_setup_checks():
    with pytest.raises(MethodError, match="multi-domain") as error:
        build_method("aioli").setup(["a", "b"])
    assert "\n" not in str(error.value)
    with pytest.raises(MethodError, match="update_steps"):
        _method(lp_rounds=4, lp_steps=4, update_steps=10)
    with pytest.raises(MethodError, match="one_hot_factor must be > 1/2"):
        _method(one_hot_factor=0.5)
    with pytest.raises(MethodError, match="normalize must be true or false"):
        build_method("aioli", normalize="yes")
