"""PB2 explore (scalarize.search.pb2): the kernel's formula, the data it uses, its errors.

Small data and 64 candidates keep each test well under a second.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, WhiteKernel

from scalarize.search import pb2
from scalarize.search.pb2 import TimeVaryingRBF, _fit, pb2_explore, standardise, ucb_kappa


def data(k: int = 3, syncs: int = 3, members: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = np.repeat(np.arange(1, syncs + 1), members).astype(float)
    w = rng.dirichlet(np.ones(k), size=len(times))
    y = w[:, 0] - 0.5 * w[:, 1] + 0.05 * rng.standard_normal(len(times))
    return times, w, y


def explore(times, w, y, count=2, seed=1, **kwargs):
    return pb2_explore(times, w, y, now=times.max() + 1, count=count, rng=seed, candidates=64, **kwargs)


def fallback(k: int, count: int, seed: int) -> np.ndarray:
    draws = np.random.default_rng(seed).dirichlet(np.ones(k), size=count)
    return draws / draws.sum(axis=1, keepdims=True)


def test_kernel_formula():
    x = np.array([[1.0, 0.2, 0.8], [4.0, 0.5, 0.5]])
    kernel = TimeVaryingRBF(epsilon=0.2, length_scale=0.4)
    distance2 = 0.3**2 + 0.3**2
    expected = (1 - 0.2) ** (3 / 2) * math.exp(-distance2 / (2 * 0.4**2))
    k = kernel(x)
    assert k[0, 1] == pytest.approx(expected) and k[1, 0] == pytest.approx(expected)
    assert np.diag(k) == pytest.approx([1.0, 1.0])
    assert kernel(x[:1], x[1:])[0, 0] == pytest.approx(expected)


def test_improvements_are_standardised():
    times, w, y = data()
    np.testing.assert_array_equal(explore(times, w, y), explore(times, w, 4.0 * y + 3.0))


def test_picks_follow_the_improvement():
    times, w, y = data()
    out = explore(times, w, y, count=3)
    assert out.shape == (3, 3) and np.allclose(out.sum(axis=1), 1.0)
    assert np.all(out[:, 0] > 1 / 3)


def test_pending_weights_push_picks_away():
    times, w, _ = data()
    flat = np.zeros(len(times))  # no signal: UCB is the uncertainty alone
    first = explore(times, w, flat, count=1)
    again = explore(times, w, flat, count=1, pending=first)
    assert not np.allclose(first, again)
    assert np.array_equal(first, explore(times, w, flat, count=1, pending=None))


def test_two_usable_rows_are_enough_for_the_gp():
    times, w, y = data(syncs=1, members=3)
    y[2] = math.nan
    assert not np.allclose(explore(times, w, y), fallback(3, 2, seed=1))


def test_a_row_with_bad_weights_is_dropped_alone():
    times, w, y = data()
    w = w.copy()
    w[0, 1] = math.nan
    out = explore(times, w, y)
    assert np.all(np.isfinite(out)) and not np.allclose(out, fallback(3, 2, seed=1))


def test_one_row_falls_back_to_dirichlet():
    times, w, y = data(syncs=1, members=2)
    y[1] = math.inf
    np.testing.assert_allclose(explore(times, w, y), fallback(3, 2, seed=1))


def test_one_task_and_one_pick():
    times, _, y = data()
    ones = np.ones((len(times), 1))
    assert explore(times, ones, y, count=1).tolist() == [[1.0]]
    assert explore(times, ones, y, count=np.int64(3)).shape == (3, 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ([1, 2], [[0.5, 0.5]], [1, 2], 1),
            "pb2_explore: need times [n], weights [n, k], improvements [n]; got (2,), (1, 2), (2,)",
        ),
        (
            ([1, 2], [0.5, 0.5], [1, 2], 1),
            "pb2_explore: need times [n], weights [n, k], improvements [n]; got (2,), (2,), (2,)",
        ),
        (
            ([1, 2], np.zeros((2, 0)), [1, 2], 1),
            "pb2_explore: need times [n], weights [n, k], improvements [n]; got (2,), (2, 0), (2,)",
        ),
        (
            ([1, 2], [[0.5, 0.5], [0.2, 0.8]], [1, 2], True),
            "pb2_explore: count must be a positive int; got True",
        ),
        (
            ([1, 2], [[0.5, 0.5], [0.2, 0.8]], [1, 2], 0),
            "pb2_explore: count must be a positive int; got 0",
        ),
    ],
)
def test_errors(args, message):
    times, weights, improvements, count = args
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        pb2_explore(times, weights, improvements, now=3, count=count, rng=0)


def test_ucb_kappa():
    assert ucb_kappa(5) == pytest.approx(math.sqrt(0.2 * math.log(2.0)))
    assert ucb_kappa(2) == ucb_kappa(5)  # floored at five observations
    assert ucb_kappa(100) == pytest.approx(math.sqrt(0.2 * math.log(40.0)))


def prior() -> Kernel:
    return ConstantKernel(1.0, (1e-2, 1e2)) * TimeVaryingRBF() + WhiteKernel(0.1, (1e-6, 1))


def test_fit_optimises_the_kernel_only_when_asked():
    times, w, y = data()
    X = np.column_stack([times, w])
    assert not np.allclose(_fit(X, y, prior(), optimize=True).kernel_.theta, prior().theta)
    np.testing.assert_array_equal(_fit(X, y, prior(), optimize=False).kernel_.theta, prior().theta)


@pytest.fixture
def fits(monkeypatch):
    """Every call of ``_fit`` inside pb2_explore: (X, kernel, optimize, fitted GP)."""
    calls = []

    def spy(X, y, kernel, optimize):
        gp = _fit(X, y, kernel, optimize)
        calls.append((X, kernel, optimize, gp))
        return gp

    monkeypatch.setattr(pb2, "_fit", spy)
    return calls


def test_the_prior_is_fitted_then_kept_for_hallucinations(fits):
    times, w, y = data()
    now = times.max() + 1
    pending = w[:1]
    picks = explore(times, w, y, count=2, pending=pending)
    assert [optimize for _, _, optimize, _ in fits] == [True, False, False]
    params = {k: v for k, v in fits[0][1].get_params().items() if not isinstance(v, Kernel)}
    assert params == {  # the prior of the module docstring
        "k1__k1__constant_value": 1.0,
        "k1__k1__constant_value_bounds": (1e-2, 1e2),
        "k1__k2__epsilon": 0.1,
        "k1__k2__epsilon_bounds": (1e-4, 0.5),
        "k1__k2__length_scale": 0.3,
        "k1__k2__length_scale_bounds": (0.02, 10.0),
        "k2__noise_level": 0.1,
        "k2__noise_level_bounds": (1e-6, 1),
    }
    fitted = fits[0][3].kernel_
    assert fits[1][1] is fitted and fits[2][1] is fitted
    np.testing.assert_array_equal(fits[1][0][-1], [now, *pending[0]])  # pending, hallucinated
    np.testing.assert_allclose(fits[2][0][-1], [now, *picks[0]], rtol=1e-12)  # then the first pick
    assert len(fits[2][0]) == len(times) + 2


def test_default_candidates(fits):
    times, w, y = data()
    rng = np.random.default_rng(7)
    pb2_explore(times, w, y, now=4, count=1, rng=rng)
    twin = np.random.default_rng(7)
    twin.dirichlet(np.ones(3), size=512)
    assert rng.random() == twin.random()


def test_columns_are_flattened():
    times, w, y = data()
    flat = explore(times, w, y, pending=w[:2])
    np.testing.assert_array_equal(flat, explore(times[:, None], w, y[:, None], pending=w[:2].reshape(-1)))


@pytest.mark.parametrize("scale, shift", [(1e4, 1e5), (1e-4, 0.0)])
def test_improvements_on_any_scale(scale, shift):
    times, w, y = data()
    np.testing.assert_array_equal(explore(times, w, y), explore(times, w, scale * y + shift))


def test_kernel_is_stationary():
    assert TimeVaryingRBF().is_stationary() is True


def test_standardise():
    # mean 1, standard deviation 3: the outlier is 3 deviations away, clipped to 2.
    y = np.array([0.0] * 9 + [10.0])
    assert standardise(y).tolist() == pytest.approx([-1 / (3 + 1e-8)] * 9 + [2.0], rel=1e-12)
    assert standardise(-y).tolist() == pytest.approx([1 / (3 + 1e-8)] * 9 + [-2.0], rel=1e-12)
    assert standardise(np.full(4, 7.0)).tolist() == [0.0] * 4
