"""Adaptive sweep design (scalarize.search.adaptive): new weights land in the front's gaps."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from scalarize.pareto import hypervolume
from scalarize.search import adaptive_weights, front_gaps, maximin_weights

BOTH = [True, True]


def two_tasks(w0) -> np.ndarray:
    w0 = np.asarray(w0, dtype=np.float64)
    return np.c_[w0, 1 - w0]


def circle(weights: np.ndarray) -> np.ndarray:
    """Scalarization of the quarter circle (cos θ, sin θ), both maximised: weights w pick the
    point of angle θ = atan2(w1, w0), a non-linear map from weights to the front."""
    theta = np.arctan2(weights[:, 1], weights[:, 0])
    return np.c_[np.cos(theta), np.sin(theta)]


def chord(degrees: float) -> float:
    return 2 * math.sin(math.radians(degrees) / 2)


# Even weights w0 = 0, 0.25, 0.5, 0.75, 1 give angles 90, 71.57, 45, 18.43, 0 degrees: the two
# middle gaps (26.57 degrees) are wider than the two outer ones (18.43 degrees).
EVEN5 = two_tasks([0.0, 0.25, 0.5, 0.75, 1.0])
OUTER, MIDDLE = chord(90 - math.degrees(math.atan(3))), chord(45 - math.degrees(math.atan(1 / 3)))


class TestGaps:
    def test_quarter_circle_chain(self):
        gaps = front_gaps(EVEN5, circle(EVEN5), BOTH)
        assert [(i, j) for _, i, j in gaps] == [(0, 1), (1, 2), (2, 3), (3, 4)]
        assert [g for g, _, _ in gaps] == pytest.approx([OUTER, MIDDLE, MIDDLE, OUTER])

    def test_lengths_use_the_front_range(self):
        values = circle(EVEN5) * np.array([1.0, 100.0])  # rescaling an objective changes nothing
        gaps = front_gaps(EVEN5, values, BOTH)
        assert [g for g, _, _ in gaps] == pytest.approx([OUTER, MIDDLE, MIDDLE, OUTER])

    def test_dominated_and_failed_runs_are_not_on_the_front(self):
        weights = np.vstack([EVEN5, two_tasks([0.4, 0.6])])
        values = np.vstack([circle(EVEN5), [[0.1, 0.1], [math.nan, 2.0]]])
        assert [(i, j) for _, i, j in front_gaps(weights, values, BOTH)] == [
            (0, 1),
            (1, 2),
            (2, 3),
            (3, 4),
        ]

    def test_same_weights_and_zero_length_edges_are_dropped(self):
        apart, same = [[0.4, 0.6], [0.6, 0.4]], [[0.5, 0.5], [0.5, 0.5]]
        assert [(i, j) for _, i, j in front_gaps(two_tasks([0.2, 0.3]), apart, BOTH)] == [(0, 1)]
        assert front_gaps(two_tasks([0.5, 0.5]), apart, BOTH) == []  # two seeds, one weight
        assert front_gaps(two_tasks([0.2, 0.3]), same, BOTH) == []  # a zero-length gap

    def test_constant_objective_adds_nothing(self):
        values = np.c_[circle(EVEN5), np.full(5, 3.0)]  # a zero range divides by 1, not 0
        gaps = front_gaps(EVEN5, values, [True] * 3)
        assert [g for g, _, _ in gaps] == pytest.approx([OUTER, MIDDLE, MIDDLE, OUTER])

    def test_rejects_mismatched_values(self):
        message = "values must be a 2-D array with one row per weight vector (5); got shape (4, 2)"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            front_gaps(EVEN5, circle(EVEN5)[:4], BOTH)
        with pytest.raises(ValueError, match=r"got shape \(5,\)$"):
            front_gaps(EVEN5, np.ones(5), BOTH)


class TestAdaptive:
    def test_first_points_go_to_the_largest_gaps(self):
        out = adaptive_weights(EVEN5, circle(EVEN5), BOTH, 2)
        assert out[:, 0].tolist() == [0.375, 0.625]

    def test_batch_refines_by_bisection(self):
        # Middle gaps halved (0.2297 each) are shorter than the outer ones (0.3204), which come
        # next; then the lower half of the first middle gap.
        out = adaptive_weights(EVEN5, circle(EVEN5), BOTH, 5)
        assert out[:, 0].tolist() == [0.375, 0.625, 0.125, 0.875, 0.3125]

    def test_gap_in_objective_space_not_weight_space(self):
        # Weights crowded at one end still leave the widest front gap where angles are far apart.
        w = two_tasks([0.0, 0.05, 0.1, 0.2, 1.0])
        out = adaptive_weights(w, circle(w), BOTH, 1)
        assert out.tolist() == [pytest.approx([0.6, 0.4])]

    def test_minimised_objectives(self):
        losses = -circle(EVEN5)
        out = adaptive_weights(EVEN5, losses, [False, False], 2)
        assert out[:, 0].tolist() == [0.375, 0.625]

    def test_trained_weights_are_not_proposed_again(self):
        weights = np.vstack([EVEN5, two_tasks([0.375])])
        values = np.vstack([circle(EVEN5), [[0.1, 0.1]]])  # 0.375 trained, dominated
        out = adaptive_weights(weights, values, BOTH, 2)
        assert out[:, 0].tolist() == [0.625, 0.125]

    def test_three_objectives_largest_empty_region(self):
        # Corners and (0.5, 0.5, 0) with values equal to the weights: the spanning tree joins
        # the third corner to (0.5, 0.5, 0) (1.22), the other edges are 0.71: the new weights
        # go halfway along the longest edge.
        w = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0]])
        out = adaptive_weights(w, w, [True] * 3, 1)
        assert out.tolist() == [[0.25, 0.25, 0.5]]

    def test_pure_function_of_the_inputs(self):
        w, v = EVEN5.copy(), circle(EVEN5)
        first = adaptive_weights(w, v, BOTH, 6)
        assert np.array_equal(first, adaptive_weights(w, v, BOTH, 6))
        assert np.array_equal(w, EVEN5)

    def test_beats_even_weights_on_a_skewed_front(self):
        # The front angle moves as (1 − w0)^4: even weights bunch up near one end. Three rounds
        # of 4 adaptive points after 5 even ones enclose more hypervolume than 17 even ones.
        def skewed(weights):
            theta = math.pi / 2 * (1 - weights[:, 0]) ** 4
            return np.c_[np.cos(theta), np.sin(theta)]

        w = two_tasks(np.linspace(0, 1, 5))
        for _ in range(3):
            w = np.vstack([w, adaptive_weights(w, skewed(w), BOTH, 4)])
        even = two_tasks(np.linspace(0, 1, len(w)))
        adaptive_hv = hypervolume(skewed(w), [0, 0], BOTH)
        assert adaptive_hv > 1.03 * hypervolume(skewed(even), [0, 0], BOTH)

    @pytest.mark.parametrize("batch", [0, -1, 1.0, True])
    def test_rejects_batch(self, batch):
        message = f"batch must be a positive int; got {batch!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            adaptive_weights(EVEN5, circle(EVEN5), BOTH, batch)
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            maximin_weights(EVEN5, batch, 2)

    def test_numpy_batch(self):
        assert adaptive_weights(EVEN5, circle(EVEN5), BOTH, np.int64(2)).shape == (2, 2)

    def test_rejects_bad_weights(self):
        with pytest.raises(ValueError, match="non-negative"):
            adaptive_weights([[0.5, -0.5], [1, 0]], [[0, 1], [1, 0]], BOTH, 1)
        for bad, shape in (([0.5, 0.5], "(2,)"), (np.zeros((2, 0)), "(2, 0)")):
            message = f"weights must be a 2-D array [n, k]; got shape {shape}"
            with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
                adaptive_weights(bad, [[0, 1], [1, 0]], BOTH, 1)

    def test_weights_are_renormalised(self):
        scaled = EVEN5 * np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])  # different row sums
        out = adaptive_weights(scaled, circle(EVEN5), BOTH, 2)
        assert out[:, 0].tolist() == [0.375, 0.625]

    def test_equal_distances_join_through_the_first_tree_point(self):
        # Corners of the simplex with values equal to the weights: every pair is √2 apart.
        # Prim adds the second corner, then the third joins through the first (found first).
        corners = np.eye(3)
        out = adaptive_weights(corners, corners, [True] * 3, 2)
        assert out.tolist() == [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]]


class TestFallback:
    def test_all_points_equal(self):
        out = adaptive_weights(EVEN5, np.ones((5, 2)), BOTH, 3)
        assert out[:, 0].tolist() == [0.125, 0.375, 0.625]

    def test_one_point(self):
        out = adaptive_weights(two_tasks([0.0]), [[1.0, 2.0]], BOTH, 3)
        assert out[:, 0].tolist() == [1.0, 0.5, 0.25]

    def test_nothing_trained(self):
        out = adaptive_weights(np.zeros((0, 3)), np.zeros((0, 2)), BOTH, 4)
        assert out.tolist()[:3] == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
        assert out[3] == pytest.approx([1 / 3] * 3)

    def test_every_run_failed(self):
        out = adaptive_weights(EVEN5, np.full((5, 2), np.nan), BOTH, 1)
        assert out[:, 0].tolist() == [0.125]

    def test_nothing_trained_as_a_plain_list(self):
        assert maximin_weights([], 2, 3).tolist() == [[0, 0, 1], [0, 1, 0]]

    def test_single_task_has_nothing_to_propose(self):
        assert maximin_weights([[1.0]], 3, 1).shape == (0, 1)

    def test_candidates_run_out(self):
        corners = np.eye(2)
        lattice_size = 1025  # 1/1024 spacing for two tasks
        out = maximin_weights(corners, lattice_size, 2)
        assert len(out) == lattice_size - 2
        assert len(np.unique(out, axis=0)) == len(out)

    @pytest.mark.parametrize("k, size", [(2, 1025), (3, 562), (5, 496), (12, 1366), (100, 101)])
    def test_candidate_lattice_sizes(self, k, size):
        # Spacing 1/m, m the largest power of two within 2,000 points (1024, 32, 8, 4, 1), plus
        # the uniform point when it is not on the lattice.
        out = maximin_weights(np.zeros((0, k)), 10**6, k)
        assert len(out) == size and len(np.unique(out, axis=0)) == size

    def test_many_tasks_use_the_corners(self):
        out = maximin_weights(np.zeros((0, 12)), 13, 12)
        assert sorted(map(tuple, out[:12])) == sorted(map(tuple, np.eye(12)))
        assert out[12] == pytest.approx(np.full(12, 1 / 12))


def test_pure_logic_module():
    text = (Path(__file__).resolve().parents[1] / "src/scalarize/search/adaptive.py").read_text()
    assert "import torch" not in text and "open(" not in text
