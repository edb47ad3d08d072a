"""RLW: random weights on the simplex, from the method's own seeded generator."""

import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("rlw", **options)
    method.setup(["a", "b", "c"])
    return method


def test_weights_are_softmax_of_normal_draws_from_the_seeded_generator():
    method = _method(seed=3)
    reference = torch.Generator().manual_seed(3)
    for _ in range(3):
        losses = torch.tensor([1.0, 2.0, 3.0])
        value = method.combine(losses)
        expected = torch.softmax(torch.randn(3, generator=reference), dim=0)
        torch.testing.assert_close(method.current_weights(), expected)
        torch.testing.assert_close(value, expected @ losses)


def test_weights_lie_on_the_simplex_and_change_every_step():
    for distribution in ("normal", "dirichlet"):
        method = _method(distribution=distribution, seed=0)
        draws = []
        for _ in range(50):
            method.combine(torch.ones(3))
            w = method.current_weights()
            assert (w > 0).all() and abs(float(w.sum()) - 1) < 1e-6
            draws.append(w)
        assert torch.stack(draws).std(dim=0).min() > 0.05


def test_does_not_touch_the_global_rng():
    method = _method(seed=0)
    state = torch.get_rng_state()
    method.combine(torch.ones(3))
    assert torch.equal(state, torch.get_rng_state())


def test_seeds_differ_and_repeat():
    a, b, c = _method(seed=1), _method(seed=1), _method(seed=2)
    wa, wb, wc = (m.draw() for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_every_distribution_is_normalised_by_softmax_as_the_authors_do():
    for distribution in ("uniform", "dirichlet"):
        method = _method(distribution=distribution, seed=5)
        reference = torch.Generator().manual_seed(5)
        u = torch.rand(3, generator=reference, dtype=torch.float64)
        raw = u if distribution == "uniform" else (-torch.log1p(-u)) / (-torch.log1p(-u)).sum()
        torch.testing.assert_close(method.draw(), torch.softmax(raw, dim=0).float())
        # a softmax of values in [0, 1]: the weights' ratio is at most e
        for _ in range(20):
            w = method.draw()
            assert float(w.max() / w.min()) <= torch.e + 1e-6


def test_sum_normalisation_keeps_a_dirichlet_draw():
    method = _method(distribution="dirichlet", normalization="sum", seed=5)
    reference = torch.Generator().manual_seed(5)
    e = -torch.log1p(-torch.rand(3, generator=reference, dtype=torch.float64))
    torch.testing.assert_close(method.draw(), (e / e.sum()).float())
