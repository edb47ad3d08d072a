"""Seeded methods draw from their own generator only: a seed gives the same updates whatever the
global RNG's state, another seed other updates; GradVac's EMA rate β by hand; MetaBalance keeps
a task whose gradient vanishes at weight 1."""

import math

import pytest
import torch
from registered import ALL

from scalarize.methods import PREFERENCE_INPUT, build_method
from scalarize.methods.registry import method_options

#: Every method with a ``seed`` option.
SEEDED = [name for name in ALL if "seed" in (method_options(name) or [])]


def _run(name, seed, global_seed):
    torch.manual_seed(global_seed)
    method = build_method(name, seed=seed)
    method.setup(["a", "b", "c"])
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(4):
        G = torch.randn(3, 6, generator=gen, dtype=torch.float64)
        G[1] = -G[0] + 0.1 * G[1]  # conflicts, so that projections (and their order) matter
        losses = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
        torch.manual_seed(global_seed + 100)  # the global RNG moves between steps
        if PREFERENCE_INPUT in method.needs:
            method.draw_preference()
        if hasattr(method, "aggregate"):
            out.append(method.aggregate(G, losses))
        else:
            out.append(method.combine(losses).detach().reshape(1))
    return torch.cat(out)


def test_the_seeded_methods_are_found():
    assert {"rlw", "pcgrad", "gradvac", "graddrop", "cosmos"} <= set(SEEDED)


@pytest.mark.parametrize("name", SEEDED)
def test_a_seed_fixes_the_draws_whatever_the_global_rng(name):
    a = _run(name, seed=5, global_seed=1)
    b = _run(name, seed=5, global_seed=2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = _run(name, seed=6, global_seed=1)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("beta", [0.2, 0.9])
def test_gradvac_targets_move_at_rate_beta(beta):
    method = build_method("gradvac", beta=beta, seed=0)
    method.setup(["a", "b"])
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    method.aggregate(G, torch.ones(2))
    cos = -1 / math.sqrt(2)
    expected = torch.tensor([[0.0, beta * cos], [beta * cos, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(method.phi_hat, expected)
    method.aggregate(G, torch.ones(2))  # φ̂ ← (1 − β) φ̂ + β φ with φ the same cosine
    again = (1 - beta) * beta * cos + beta * cos
    torch.testing.assert_close(method.phi_hat[0, 1], torch.tensor(again, dtype=torch.float64))


def test_metabalance_leaves_a_vanished_gradient_at_weight_one():
    method = build_method("metabalance", relax_factor=0.5)
    method.setup(["main", "aux"])
    G = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    d = method.aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 1.0]))
