"""PB2 explore (scalarize.search.pb2): the kernel's formula, the data it uses, its errors.

Small data and 64 candidates keep each test well under a second.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from scalarize.search.pb2 import TimeVaryingRBF, pb2_explore


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
