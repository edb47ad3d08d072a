"""Tests of scalarize.pareto: fronts, hypervolume, Δm and selection (hand-computed + brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scalarize.pareto import (
    AtLeast,
    AtMost,
    MaxMean,
    WeightedPreference,
    default_reference,
    delta_m,
    delta_m_batch,
    dominates,
    hypervolume,
    non_dominated_mask,
    pareto_front,
    select,
)


def brute_force_mask(points: np.ndarray, maximize) -> np.ndarray:
    """O(n²) reference: i is non-dominated iff no j is ≥ everywhere and > somewhere."""
    s = np.where(np.asarray(maximize), points, -points)  # larger is better
    n = len(points)
    return np.array(
        [not any(np.all(s[j] >= s[i]) and np.any(s[j] > s[i]) for j in range(n) if j != i) for i in range(n)],
        dtype=bool,
    )


def brute_force_hv_2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Minimisation HV in 2-D on the grid of coordinates (union of boxes), exact."""
    xs = np.unique(np.concatenate([points[:, 0], [ref[0]]]))
    ys = np.unique(np.concatenate([points[:, 1], [ref[1]]]))
    total = 0.0
    for x0, x1 in itertools.pairwise(xs):
        for y0, y1 in itertools.pairwise(ys):
            if any(p[0] <= x0 and p[1] <= y0 for p in points) and x1 <= ref[0] and y1 <= ref[1]:
                total += (x1 - x0) * (y1 - y0)
    return total


# --------------------------------------------------------------------------- fronts


class TestFront:
    def test_mixed_directions_hand(self):
        # accuracy up, error down
        pts = [[0.9, 0.3], [0.8, 0.1], [0.7, 0.2], [0.9, 0.4], [0.95, 0.5]]
        mask = non_dominated_mask(pts, [True, False])
        # 2 dominated by 1; 3 dominated by 0 (same accuracy, larger error)
        assert mask.tolist() == [True, True, False, False, True]
        assert pareto_front(pts, [True, False]).tolist() == [0, 1, 4]

    def test_direction_matters(self):
        pts = [[1.0, 1.0], [2.0, 2.0]]
        assert pareto_front(pts, [False, False]).tolist() == [0]
        assert pareto_front(pts, [True, True]).tolist() == [1]
        assert pareto_front(pts, [True, False]).tolist() == [0, 1]

    def test_duplicates_all_kept(self):
        pts = [[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [3.0, 3.0], [3.0, 3.0]]
        assert pareto_front(pts, [False, False]).tolist() == [0, 1, 2]

    def test_ties_on_one_objective_are_dominated(self):
        # same first objective, worse second: weakly worse → dominated
        pts = [[1.0, 1.0], [1.0, 2.0]]
        assert non_dominated_mask(pts, [False, False]).tolist() == [True, False]

    def test_single_point_and_empty(self):
        assert pareto_front([[0.3, 0.7, 0.1]], [True, True, False]).tolist() == [0]
        assert pareto_front(np.zeros((0, 2)), [True, False]).tolist() == []
        assert non_dominated_mask([], [True, False]).shape == (0,)

    def test_one_objective(self):
        assert pareto_front([[1.0], [3.0], [3.0], [2.0]], [True]).tolist() == [1, 2]

    def test_returns_sorted_int_indices(self):
        idx = pareto_front([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [False, False])
        assert idx.dtype == np.int64 and idx.tolist() == [0, 1, 2]

    @pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
    def test_against_brute_force_random(self, k):
        rng = np.random.default_rng(k)
        for _ in range(20):
            n = int(rng.integers(1, 40))
            # small integer grid → many ties and duplicates
            pts = rng.integers(0, 4, size=(n, k)).astype(float)
            maximize = rng.random(k) < 0.5
            np.testing.assert_array_equal(non_dominated_mask(pts, maximize), brute_force_mask(pts, maximize))
            cont = rng.random((n, k))
            np.testing.assert_array_equal(non_dominated_mask(cont, maximize), brute_force_mask(cont, maximize))

    def test_dominates(self):
        assert dominates([0.9, 0.1], [0.8, 0.1], [True, False])
        assert not dominates([0.9, 0.1], [0.9, 0.1], [True, False])
        assert not dominates([0.9, 0.2], [0.8, 0.1], [True, False])

    @pytest.mark.parametrize(
        "pts, maximize, match",
        [
            ([[1.0, 2.0]], [True], "objectives"),
            ([[1.0, np.nan]], [True, True], "finite"),
            ([1.0, 2.0], [True, True], "2-D"),
            ([[1.0, 2.0]], True, "sequence"),
            ([[1.0, 2.0]], ["yes", "no"], "bools"),
        ],
    )
    def test_bad_input(self, pts, maximize, match):
        with pytest.raises(ValueError, match=match):
            non_dominated_mask(pts, maximize)


# --------------------------------------------------------------------------- hypervolume


class TestHypervolume:
    def test_2d_by_hand_minimise(self):
        # staircase of (1,3), (2,2), (3,1) against (4,4): 3 + 2 + 1 = 6
        pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
        assert hypervolume(pts, [4.0, 4.0], [False, False]) == pytest.approx(6.0)

    def test_2d_by_hand_mixed(self):
        # accuracy (max) and error (min); reference acc 0.5, err 0.5
        # (0.9, 0.3): box 0.4 × 0.2; (0.7, 0.1): box 0.2 × 0.4; overlap 0.2 × 0.2
        pts = [[0.9, 0.3], [0.7, 0.1]]
        hv = hypervolume(pts, [0.5, 0.5], [True, False])
        assert hv == pytest.approx(0.08 + 0.08 - 0.04)

    def test_2d_maximise_both(self):
        assert hypervolume([[2.0, 3.0]], [0.0, 1.0], [True, True]) == pytest.approx(4.0)

    def test_3d_by_hand(self):
        # (0,0,0) against (1,1,1) is the unit cube; the dominated (0.5,0.5,0.5) adds nothing
        assert hypervolume([[0, 0, 0], [0.5, 0.5, 0.5]], [1, 1, 1], [False] * 3) == pytest.approx(1)
        # against ref (2,2,1): (0,1,0) → [0,2]×[1,2]×[0,1] = 2; (1,0,0) → [1,2]×[0,2]×[0,1] = 2;
        # overlap [1,2]×[1,2]×[0,1] = 1 → 3
        pts = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
        assert hypervolume(pts, [2.0, 2.0, 1.0], [False] * 3) == pytest.approx(3.0)
        # (0,0,0.5) → [0,2]×[0,2]×[0.5,1] = 2, of which the L-shape (area 3) × 0.5 = 1.5 is
        # already covered → 3 + 0.5
        pts.append([0.0, 0.0, 0.5])
        assert hypervolume(pts, [2.0, 2.0, 1.0], [False] * 3) == pytest.approx(3.5)
        # same set with every objective maximised (negated points and reference)
        neg = -np.asarray(pts)
        assert hypervolume(neg, [-2.0, -2.0, -1.0], [True] * 3) == pytest.approx(3.5)

    def test_points_not_strictly_dominating_reference_contribute_nothing(self):
        ref = [2.0, 2.0]
        assert hypervolume([[2.0, 0.0]], ref, [False, False]) == 0.0  # on the boundary
        assert hypervolume([[3.0, 0.0]], ref, [False, False]) == 0.0  # outside
        assert hypervolume([[3.0, 0.0], [1.0, 1.0]], ref, [False, False]) == pytest.approx(1.0)
        assert hypervolume(np.zeros((0, 2)), ref, [False, False]) == 0.0

    def test_duplicates_do_not_add_volume(self):
        assert hypervolume([[1.0, 1.0], [1.0, 1.0]], [2.0, 2.0], [False, False]) == 1.0

    def test_against_brute_force_2d(self):
        rng = np.random.default_rng(0)
        for _ in range(10):
            pts = rng.integers(0, 6, size=(8, 2)).astype(float)
            maximize = rng.random(2) < 0.5
            ref = np.where(maximize, -1.0, 6.0)
            mins = np.where(maximize, -pts, pts)
            expected = brute_force_hv_2d(mins, np.where(maximize, -ref, ref))
            assert hypervolume(pts, ref, maximize) == pytest.approx(expected)

    def test_reference_shape_checked(self):
        with pytest.raises(ValueError, match="reference"):
            hypervolume([[1.0, 1.0]], [2.0, 2.0, 2.0], [False, False])


class TestDefaultReference:
    def test_worst_observed(self):
        pts = [[0.9, 0.3], [0.7, 0.1], [0.8, 0.2]]
        np.testing.assert_allclose(default_reference(pts, [True, False]), [0.7, 0.3])

    def test_margin_moves_outward(self):
        pts = [[0.9, 0.3], [0.7, 0.1]]
        ref = default_reference(pts, [True, False], margin=0.1)
        np.testing.assert_allclose(ref, [0.6, 0.4])
        # with the margin, extreme points enclose volume
        assert hypervolume(pts, ref, [True, False]) > 0

    def test_stl(self):
        ref = default_reference([[0.9, 0.3]], [True, False], stl=[0.85, 0.25])
        np.testing.assert_allclose(ref, [0.85, 0.25])
        # the point is worse than STL on error → no volume
        assert hypervolume([[0.9, 0.3]], ref, [True, False]) == 0.0

    def test_errors(self):
        with pytest.raises(ValueError, match="margin"):
            default_reference([[1.0, 1.0]], [True, True], margin=-1.0)
        with pytest.raises(ValueError, match="stl"):
            default_reference(np.zeros((0, 2)), [True, True])


# --------------------------------------------------------------------------- Δm


class TestDeltaM:
    def test_by_hand_mixed(self):
        # task 0 accuracy: 0.88 vs 0.80 → +10 %; task 1 error: 0.22 vs 0.20 → worse by 10 %
        # task 2 loss: 0.9 vs 1.2 → better by 25 %; mean = (10 − 10 + 25) / 3
        dm = delta_m([0.88, 0.22, 0.9], [0.80, 0.20, 1.2], [True, False, False])
        assert dm == pytest.approx(25.0 / 3.0)

    def test_equal_to_stl_is_zero_and_sign(self):
        assert delta_m([0.5, 0.5], [0.5, 0.5], [True, False]) == 0.0
        assert delta_m([0.6, 0.4], [0.5, 0.5], [True, False]) > 0
        assert delta_m([0.4, 0.6], [0.5, 0.5], [True, False]) < 0

    def test_batch_matches_rows(self):
        rng = np.random.default_rng(0)
        m = rng.random((7, 3)) + 0.1
        stl = rng.random(3) + 0.1
        maximize = [True, False, True]
        batch = delta_m_batch(m, stl, maximize)
        assert batch.shape == (7,)
        np.testing.assert_allclose(batch, [delta_m(row, stl, maximize) for row in m])

    @pytest.mark.parametrize(
        "metrics, stl, maximize, match",
        [
            ([0.5, 0.5], [0.5, 0.0], [True, False], "positive"),
            ([0.5, 0.5], [0.5, -1.0], [True, False], "positive"),
            ([0.5, 0.5], [0.5, 0.5, 0.5], [True, False], "stl must have 2"),
            ([0.5, 0.5, 0.5], [0.5, 0.5], [True, False], "3 objectives"),
            ([[0.5, 0.5]], [0.5, 0.5], [True, False], "1-D"),
        ],
    )
    def test_errors(self, metrics, stl, maximize, match):
        with pytest.raises(ValueError, match=match):
            delta_m(metrics, stl, maximize)

    def test_batch_requires_2d(self):
        with pytest.raises(ValueError, match="2-D"):
            delta_m_batch([0.5, 0.5], [0.5, 0.5], [True, False])


# --------------------------------------------------------------------------- selection


MIXED = np.array(
    [
        [0.90, 0.30],  # 0
        [0.80, 0.10],  # 1
        [0.95, 0.40],  # 2
        [0.70, 0.05],  # 3
    ]
)
DIRS = [True, False]  # accuracy up, error down


class TestSelect:
    def test_max_mean(self):
        # signed means: 0.30, 0.35, 0.275, 0.325 → index 1
        assert select(MIXED, DIRS, MaxMean()) == 1
        assert select(MIXED, DIRS, "max_mean") == 1
        assert select(MIXED, DIRS) == 1

    def test_weighted_preference(self):
        assert select(MIXED, DIRS, WeightedPreference((1.0, 0.0))) == 2
        assert select(MIXED, DIRS, WeightedPreference((0.0, 1.0))) == 3
        # 0.9 acc weight, 0.1 err: 0.78, 0.71, 0.815, 0.625 → 2
        assert select(MIXED, DIRS, WeightedPreference([0.9, 0.1])) == 2

    def test_constraints(self):
        # accuracy ≥ 0.85: {0, 2}; best (lowest) error → 0
        assert select(MIXED, DIRS, AtLeast(0, 0.85)) == 0
        # inclusive bound
        assert select(MIXED, DIRS, AtLeast(0, 0.95)) == 2
        # error ≤ 0.2: {1, 3}; best accuracy → 1
        assert select(MIXED, DIRS, AtMost(1, 0.2)) == 1

    def test_infeasible_constraint_names_it(self):
        with pytest.raises(ValueError, match=r"objective 0 >= 0\.99"):
            select(MIXED, DIRS, AtLeast(0, 0.99))
        with pytest.raises(ValueError, match=r"objective 1 <= 0\.01"):
            select(MIXED, DIRS, AtMost(1, 0.01))

    def test_ties_lowest_index(self):
        pts = [[0.5, 0.5], [0.4, 0.6], [0.6, 0.4], [0.5, 0.5]]
        assert select(pts, [True, True], MaxMean()) == 0
        assert select(pts[1:], [True, True], MaxMean()) == 0

    def test_never_returns_dominated_on_tie(self):
        # zero weight on objective 1: both rows score 1.0 but row 0 is dominated by row 1
        pts = [[1.0, 0.2], [1.0, 0.5]]
        assert select(pts, [True, True], WeightedPreference((1.0, 0.0))) == 1
        # constraint whose "others" tie: row 0 dominated by row 1 on the constrained objective
        pts = [[0.5, 1.0], [0.9, 1.0]]
        assert select(pts, [True, True], AtLeast(0, 0.5)) == 1

    def test_single_point_and_single_objective(self):
        assert select([[0.3, 0.4]], DIRS) == 0
        assert select([[0.3], [0.1], [0.2]], [False], AtLeast(0, 0.15)) == 2
        assert select([[0.3], [0.1], [0.2]], [True], MaxMean()) == 0

    def test_errors(self):
        with pytest.raises(ValueError, match="empty"):
            select(np.zeros((0, 2)), DIRS)
        with pytest.raises(ValueError, match="unknown selection rule"):
            select(MIXED, DIRS, "best")
        with pytest.raises(ValueError, match="3 weights for 2"):
            select(MIXED, DIRS, WeightedPreference((1.0, 1.0, 1.0)))
        with pytest.raises(ValueError, match="non-negative"):
            WeightedPreference((1.0, -1.0))
        with pytest.raises(ValueError, match="out of range"):
            select(MIXED, DIRS, AtLeast(2, 0.0))
        with pytest.raises(ValueError, match="non-negative"):
            AtLeast(-1, 0.0)

    def test_selection_is_non_dominated_random(self):
        rng = np.random.default_rng(1)
        for _ in range(20):
            pts = rng.integers(0, 5, size=(15, 3)).astype(float)
            maximize = rng.random(3) < 0.5
            front = set(pareto_front(pts, maximize).tolist())
            w = rng.random(3) * (rng.random(3) < 0.7)
            rules = [MaxMean()] + ([WeightedPreference(tuple(w))] if w.any() else [])
            for rule in rules:
                assert select(pts, maximize, rule) in front
            for rule, ok in [
                (AtLeast(0, 2.0), pts[:, 0] >= 2.0),
                (AtMost(2, 1.0), pts[:, 2] <= 1.0),
            ]:
                if not ok.any():
                    with pytest.raises(ValueError, match="no point satisfies"):
                        select(pts, maximize, rule)
                    continue
                i = select(pts, maximize, rule)
                feasible = np.flatnonzero(ok)
                assert ok[i]
                assert i in feasible[pareto_front(pts[feasible], maximize)]


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys, scalarize.pareto, scalarize.search; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_front_plot_zooms_on_the_knee_only_when_extremes_squash_it():
    """Members near chance on one task (weights 0 and 1) squash the rest of a two-objective
    front: the report adds a zoom on the members above the lower quartile on both, and the
    single-task point; an even spread needs none."""
    import numpy as np

    from scalarize.report.sweep import _knee

    points = np.array(
        [
            [0.1, 0.83],
            [0.54, 0.83],
            [0.81, 0.829],
            [0.83, 0.823],
            [0.84, 0.818],
            [0.85, 0.79],
            [0.855, 0.75],
            [0.86, 0.69],
            [0.86, 0.48],
            [0.86, 0.10],
        ]
    )
    valid = np.ones(len(points), dtype=bool)
    (x_low, x_high), (y_low, y_high) = _knee(points, [True, True], valid, stl=np.array([0.865, 0.835]))
    assert 0.54 < x_low < 0.83 and x_high > 0.865 and 0.48 < y_low < 0.75 and y_high > 0.835
    even = np.array([[t, 1 - t] for t in np.linspace(0, 1, 11)])
    assert _knee(even, [True, True], np.ones(11, dtype=bool)) is None
    # minimised objectives (losses): the same members, signs flipped
    flipped = _knee(-points, [False, False], valid)
    assert flipped is not None and flipped[0][1] < -0.54
