"""Solvers on hard inputs: FairGrad and Nash-MTL with a zero gradient among others and with
nearly opposite gradients (finite, positive, the others' weights unchanged), CAGrad's update
scaling with the gradients (tiny and huge), GradNorm's weight gradient accumulating like any
``.grad``, and GradVac's ``eps`` reaching the solver."""

import numpy as np
import pytest
import torch

from scalarize.methods import build_method
from scalarize.methods.fairgrad import fairgrad_weights
from scalarize.methods.nash_mtl import nash_weights

RNG = np.random.default_rng(5)
ROWS = RNG.normal(size=(2, 5))


@pytest.mark.parametrize(
    "solve", [lambda g: fairgrad_weights(g, 2.0), lambda g: fairgrad_weights(g, 0.5), nash_weights]
)
def test_a_zero_gradient_leaves_the_others_weights(solve):
    with_zero = np.vstack([ROWS, np.zeros((1, 5))])
    w = solve(with_zero @ with_zero.T)
    assert np.isfinite(w).all() and (w > 0).all()
    np.testing.assert_allclose(w[:2], solve(ROWS @ ROWS.T), rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_fairgrad_on_nearly_opposite_gradients(alpha):
    G = RNG.normal(size=(3, 5))
    G[1] = -0.999 * G[0] + 1e-3 * G[1]
    w = fairgrad_weights(G @ G.T, alpha)
    assert np.isfinite(w).all() and (w > 0).all()
    # every task gains (the α-fair condition holds only up to the 1e-8 ridge here: the Gramian
    # is very ill-conditioned)
    assert (G @ (G.T @ w) > 0).all()


@pytest.mark.parametrize("scale", [1e-4, 1e3])
@pytest.mark.parametrize("rescale", [0, 1])
def test_cagrad_update_scales_with_the_gradients(scale, rescale):
    G = torch.from_numpy(RNG.normal(size=(3, 4)))
    G[1] = -0.6 * G[0] + 0.4 * G[1]
    method = build_method("cagrad", rescale=rescale)
    method.setup(["a", "b", "c"])
    d = method.aggregate(G, torch.ones(3))
    torch.testing.assert_close(method.aggregate(G * scale, torch.ones(3)), d * scale, rtol=1e-6, atol=0)


def test_gradnorm_weight_gradients_accumulate():
    from torch import nn

    from scalarize.methods import StepContext

    def context():
        W = nn.Parameter(torch.tensor([[1.0, 2.0]]))
        losses = torch.stack([(W[0, 0] * 3) ** 2, (W[0, 1] + 1) ** 2])
        return StepContext(losses, features=None, shared_params=[W], task_params=[[], []])

    method = build_method("gradnorm")
    method.setup(["a", "b"])
    method.backward(context())
    once = method.loss_weights.grad.clone()
    assert once.abs().sum() > 0
    method.backward(context())
    torch.testing.assert_close(method.loss_weights.grad, 2 * once)


def test_graddrop_on_no_shared_parameters():
    method = build_method("graddrop", seed=0)
    method.setup(["a", "b"])
    d = method.aggregate(torch.zeros(2, 0), torch.ones(2))
    assert d.shape == (0,)


def test_gradvac_eps_reaches_the_solver():
    G = torch.tensor([[1e-3, 0.0], [-1e-3, 1e-3]])
    outs = []
    for eps in (1e-8, 1.0):
        method = build_method("gradvac", eps=eps, seed=0)
        method.setup(["a", "b"])
        method.phi_hat.fill_(0.5)
        outs.append(method.aggregate(G, torch.ones(2)))
    assert not torch.allclose(outs[0], outs[1], rtol=1e-3, atol=0)
