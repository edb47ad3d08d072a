"""Properties of scalarize.pareto (Hypothesis): fronts, hypervolume, directions, selection, Δm."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scalarize.pareto import (
    AtLeast,
    AtMost,
    MaxMean,
    WeightedPreference,
    default_reference,
    delta_m,
    dominates,
    hypervolume,
    non_dominated_mask,
    pareto_front,
    select,
    to_minimization,
)

FAST = settings(max_examples=40, deadline=None)

# Values on a coarse grid, so that ties and duplicates (the hard cases) are common.
value = st.integers(-4, 4).map(float)


@st.composite
def point_sets(draw, min_points: int = 1, max_points: int = 9):
    k = draw(st.integers(1, 3))
    n = draw(st.integers(min_points, max_points))
    points = draw(hnp.arrays(np.float64, (n, k), elements=value))
    maximize = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    return points, maximize


@FAST
@given(point_sets())
def test_front_members_do_not_dominate_each_other(case):
    points, maximize = case
    front = pareto_front(points, maximize)
    for i in front:
        for j in front:
            assert not dominates(points[i], points[j], maximize)


@FAST
@given(point_sets())
def test_every_excluded_point_is_dominated_by_a_front_member(case):
    points, maximize = case
    mask = non_dominated_mask(points, maximize)
    assert mask.any()  # a finite non-empty set has a front
    front = np.flatnonzero(mask)
    for j in np.flatnonzero(~mask):
        assert any(dominates(points[i], points[j], maximize) for i in front)


@FAST
@given(point_sets(), st.data())
def test_flipping_a_column_and_its_direction_changes_nothing(case, data):
    points, maximize = case
    column = data.draw(st.integers(0, points.shape[1] - 1))
    flipped, directions = points.copy(), list(maximize)
    flipped[:, column] *= -1
    directions[column] = not directions[column]
    assert np.array_equal(non_dominated_mask(points, maximize), non_dominated_mask(flipped, directions))
    assert select(points, maximize) == select(flipped, directions)


@FAST
@given(point_sets())
def test_a_lower_is_better_metric_is_minimised(case):
    points, maximize = case
    for j, higher in enumerate(maximize):
        best = points[:, j].max() if higher else points[:, j].min()
        single = points[:, [j]]
        chosen = select(single, [higher])
        assert single[chosen, 0] == best
        assert non_dominated_mask(single, [higher]).tolist() == (points[:, j] == best).tolist()


@FAST
@given(point_sets(min_points=0), st.data())
def test_hypervolume_never_decreases_when_a_point_is_added(case, data):
    points, maximize = case
    k = len(maximize)
    reference = np.where(maximize, -5.0, 5.0)
    extra = np.array(data.draw(st.lists(value, min_size=k, max_size=k)))
    before = hypervolume(points, reference, maximize)
    after = hypervolume(np.vstack([points.reshape(-1, k), extra]), reference, maximize)
    assert after >= before - 1e-12


@FAST
@given(point_sets())
def test_hypervolume_of_the_front_is_the_hypervolume_of_the_set(case):
    points, maximize = case
    reference = np.where(maximize, -5.0, 5.0)
    whole = hypervolume(points, reference, maximize)
    assert whole > 0  # every grid point strictly dominates the reference
    front = points[pareto_front(points, maximize)]
    assert np.isclose(hypervolume(front, reference, maximize), whole)
    assert np.isclose(
        hypervolume(to_minimization(points, maximize), to_minimization(reference, maximize), [False] * len(maximize)),
        whole,
    )


@FAST
@given(point_sets())
def test_default_reference_is_weakly_dominated_by_every_point(case):
    points, maximize = case
    reference = to_minimization(default_reference(points, maximize, margin=0.5), maximize)
    assert np.all(to_minimization(points, maximize) < reference)


@FAST
@given(point_sets(), st.data())
def test_selection_returns_a_non_dominated_point(case, data):
    points, maximize = case
    k = len(maximize)
    weights = data.draw(st.lists(st.integers(0, 3).map(float), min_size=k, max_size=k))
    rules = [MaxMean()]
    if any(weights):
        rules.append(WeightedPreference(tuple(weights)))
    column = data.draw(st.integers(0, k - 1))
    rules += [AtLeast(column, points[:, column].min()), AtMost(column, points[:, column].max())]
    front = set(pareto_front(points, maximize).tolist())
    for rule in rules:
        assert select(points, maximize, rule) in front


@FAST
@given(point_sets(min_points=1, max_points=1), st.data())
def test_delta_m_rewards_improvement_in_each_metric_direction(case, data):
    _, maximize = case
    k = len(maximize)
    stl = np.array(data.draw(st.lists(st.floats(0.1, 10.0), min_size=k, max_size=k)))
    assert delta_m(stl, stl, maximize) == 0.0
    j = data.draw(st.integers(0, k - 1))
    better = stl.copy()
    better[j] += 0.05 if maximize[j] else -0.05
    assert delta_m(better, stl, maximize) > 0
