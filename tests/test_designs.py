"""Tests of scalarize.search.designs: simplex sweep designs, grid and weight validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalarize.search import dirichlet, grid, lattice, sobol_simplex, uniform, validate_weights


def assert_on_simplex(w: np.ndarray, k: int) -> None:
    assert w.dtype == np.float64
    assert w.ndim == 2 and w.shape[1] == k
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert len(np.unique(w, axis=0)) == len(w), "duplicate rows"


def contains_row(w: np.ndarray, row) -> bool:
    return bool(np.any(np.all(w == np.asarray(row), axis=1)))


# --------------------------------------------------------------------------- lattice


class TestLattice:
    def test_two_tasks_step_005(self):
        w = lattice(2, 0.05)
        assert_on_simplex(w, 2)
        assert len(w) == 21
        np.testing.assert_allclose(w[:, 0], np.arange(21) / 20)
        assert contains_row(w, [0.5, 0.5])

    def test_three_tasks_step_01(self):
        w = lattice(3, 0.1, include_uniform=False)
        assert_on_simplex(w, 3)
        assert len(w) == 66 == math.comb(12, 2)
        assert not contains_row(w, uniform(3))
        # 10 is not a multiple of 3: the uniform point is appended last by default
        w_u = lattice(3, 0.1)
        assert len(w_u) == 67
        np.testing.assert_array_equal(w_u[:66], w)
        np.testing.assert_array_equal(w_u[-1], uniform(3))

    def test_uniform_included_exactly_when_divisible(self):
        for k, step in [(2, 0.5), (3, 1 / 3), (4, 0.05), (3, 1 / 6)]:
            w = lattice(k, step)
            m = round(1 / step)
            assert len(w) == math.comb(m + k - 1, k - 1)  # nothing appended
            assert contains_row(w, uniform(k))  # exactly equal, not just close

    def test_lexicographic_order(self):
        w = lattice(3, 0.5)
        expected = [[0, 0, 1], [0, 0.5, 0.5], [0, 1, 0], [0.5, 0, 0.5], [0.5, 0.5, 0], [1, 0, 0]]
        np.testing.assert_array_equal(w[:6], expected)
        assert [tuple(r) for r in w[:6]] == sorted(tuple(r) for r in w[:6])

    def test_counts_and_vertices(self):
        for k in range(1, 5):
            for m in range(1, 6):
                w = lattice(k, 1 / m, include_uniform=False)
                assert_on_simplex(w, k)
                assert len(w) == math.comb(m + k - 1, k - 1)
                for vertex in np.eye(k):
                    assert contains_row(w, vertex)

    def test_single_task(self):
        np.testing.assert_array_equal(lattice(1, 0.25), [[1.0]])

    @pytest.mark.parametrize("step", [0.3, 0.0, -0.1, 1.5, float("nan"), "0.1"])
    def test_bad_step(self, step):
        with pytest.raises(ValueError, match="step"):
            lattice(2, step)

    @pytest.mark.parametrize("k", [0, -1, 2.0, True])
    def test_bad_num_tasks(self, k):
        with pytest.raises(ValueError, match="num_tasks"):
            lattice(k, 0.5)

    def test_too_large(self):
        with pytest.raises(ValueError, match="points"):
            lattice(10, 0.01)


# --------------------------------------------------------------------------- random designs


@pytest.mark.parametrize("design", [sobol_simplex, dirichlet])
class TestRandomDesigns:
    @pytest.mark.parametrize("k, n", [(2, 1), (2, 2), (2, 17), (3, 10), (5, 33), (8, 64)])
    def test_on_simplex_uniform_first(self, design, k, n):
        w = design(k, n, seed=0)
        assert_on_simplex(w, k)
        assert len(w) == n
        np.testing.assert_array_equal(w[0], uniform(k))

    def test_deterministic_under_seed(self, design):
        np.testing.assert_array_equal(design(4, 20, seed=3), design(4, 20, seed=3))
        assert not np.array_equal(design(4, 20, seed=3), design(4, 20, seed=4))

    def test_single_task(self, design):
        np.testing.assert_array_equal(design(1, 5, seed=0), [[1.0]])

    def test_bad_n(self, design):
        with pytest.raises(ValueError, match="n must"):
            design(3, 0, seed=0)


def test_sobol_prefix_stable():
    # the first rows do not depend on n (a prefix of one scrambled sequence)
    np.testing.assert_array_equal(sobol_simplex(3, 9, seed=1)[:5], sobol_simplex(3, 5, seed=1))


def test_sobol_covers_simplex_evenly():
    # sorted spacings of uniform points: each coordinate is Beta(1, k−1), mean 1/k
    w = sobol_simplex(3, 1025, seed=0)[1:]
    np.testing.assert_allclose(w.mean(axis=0), 1 / 3, atol=0.01)
    # P(w_0 > 1/2) = (1/2)^{k−1} = 1/4 for the uniform distribution on the simplex
    assert abs(np.mean(w[:, 0] > 0.5) - 0.25) < 0.02


def test_dirichlet_alpha():
    spread = dirichlet(3, 500, seed=0, alpha=0.1)[1:]
    centred = dirichlet(3, 500, seed=0, alpha=50.0)[1:]
    assert spread.max(axis=1).mean() > 0.8 > 0.5 > centred.max(axis=1).mean()
    asym = dirichlet(2, 500, seed=0, alpha=[9.0, 1.0])[1:]
    assert asym[:, 0].mean() == pytest.approx(0.9, abs=0.02)
    with pytest.raises(ValueError, match="alpha"):
        dirichlet(3, 5, seed=0, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        dirichlet(3, 5, seed=0, alpha=[1.0, 1.0])


# --------------------------------------------------------------------------- grid


class TestGrid:
    def test_cross_product_order(self):
        w = lattice(2, 0.5)  # (0,1), (0.5,0.5), (1,0)
        g = grid(w, width=[1, 2], lr=[1e-3, 3e-4], seed=[0, 1])
        assert len(g) == 3 * 2 * 2 * 2
        assert g[0] == {"weights": (0.0, 1.0), "width": 1, "lr": 1e-3, "seed": 0}
        assert g[1] == {"weights": (0.0, 1.0), "width": 1, "lr": 1e-3, "seed": 1}
        assert g[2]["lr"] == 3e-4 and g[4]["width"] == 2
        assert g[8]["weights"] == (0.5, 0.5) and g[-1]["weights"] == (1.0, 0.0)
        assert all(isinstance(x, float) for d in g for x in d["weights"])
        assert list(g[0]) == ["weights", "width", "lr", "seed"]

    def test_no_factors(self):
        assert grid([[0.2, 0.8]]) == [{"weights": (0.2, 0.8)}]

    def test_errors(self):
        with pytest.raises(ValueError, match="'lr'"):
            grid([[0.5, 0.5]], lr=1e-3)
        with pytest.raises(ValueError, match="'tag'"):
            grid([[0.5, 0.5]], tag="abc")
        with pytest.raises(ValueError, match="'seed'"):
            grid([[0.5, 0.5]], seed=[])
        with pytest.raises(ValueError, match="reserved"):
            grid([[0.5, 0.5]], weights=[1])
        with pytest.raises(ValueError, match="2-D"):
            grid([0.5, 0.5])
        with pytest.raises(ValueError, match="non-negative"):
            grid([[0.5, 0.5], [-0.5, 1.5]])


# --------------------------------------------------------------------------- validate_weights


class TestValidateWeights:
    def test_ok_returns_float_array_unchanged(self):
        out = validate_weights([1, 1, 2], 3)
        assert out.dtype == np.float64 and out.tolist() == [1.0, 1.0, 2.0]
        validate_weights(np.array([0.0, 1.0]), 2)

    @pytest.mark.parametrize(
        "w, k, match",
        [
            ([0.5, 0.5], 3, "3 entries"),
            ([[0.5, 0.5]], 2, "2 entries"),
            ([0.5, float("nan")], 2, "finite"),
            ([0.5, float("inf")], 2, "finite"),
            ([1.5, -0.5], 2, "non-negative"),
            ([0.0, 0.0], 2, "all be zero"),
            (["a", "b"], 2, "numbers"),
        ],
    )
    def test_errors_are_one_line(self, w, k, match):
        with pytest.raises(ValueError, match=match) as info:
            validate_weights(w, k)
        assert "\n" not in str(info.value)
