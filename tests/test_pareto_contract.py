"""The contract of scalarize.pareto beyond its rules: one-line errors that name the argument,
float64 results, value normalisation in the rules, the tie tolerance of select."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from scalarize.pareto import (
    AtLeast,
    AtMost,
    WeightedPreference,
    default_reference,
    delta_m,
    delta_m_batch,
    hypervolume,
    non_dominated_mask,
    select,
    to_minimization,
)

TT = [True, True]
ALLOWED_RULES = "'max_mean', MaxMean(), WeightedPreference(weights), AtLeast(index, value), AtMost(index, value)"

ERRORS = [
    (lambda: delta_m([1, 2], [1, np.nan], TT), "stl values must be finite (found NaN or inf)"),
    (
        lambda: delta_m([1, 2], [1, 0], TT),
        "stl values must be strictly positive for Δm (relative change); task(s) [1] have [0.0]",
    ),
    (lambda: delta_m([1, 2], [1], TT), "stl must have 2 entries (one per task); got shape (1,)"),
    (lambda: delta_m_batch([1, 2], [1, 1], TT), "metrics must be a 2-D array [n, k]; got shape (2,)"),
    (lambda: delta_m([[1, 2]], [1, 1], TT), "metrics must be a 1-D vector [k]; got shape (1, 2)"),
    (lambda: delta_m([], [], []), "metrics must hold at least one task"),
    (lambda: hypervolume([[1, 2]], [np.inf, 0], TT), "reference must be finite (found NaN or inf)"),
    (
        lambda: hypervolume([[1, 2]], [0, 0, 0], TT),
        "reference must have 2 entries (one per objective); got shape (3,)",
    ),
    (
        lambda: default_reference([[1, 2]], TT, stl=[1, np.nan]),
        "stl must be finite (found NaN or inf)",
    ),
    (
        lambda: default_reference([[1, 2]], TT, stl=[1, 2, 3]),
        "stl must have 2 entries (one per objective); got shape (3,)",
    ),
    (
        lambda: default_reference([[1, 2]], TT, margin=[1, np.nan]),
        "margin must be finite (found NaN or inf)",
    ),
    (
        lambda: default_reference([[1, 2]], TT, margin=[1, 2, 3]),
        "margin must have 2 entries (one per objective); got shape (3,)",
    ),
    (lambda: default_reference([[1, 2]], TT, margin=-1), "margin must be non-negative; got [-1.0, -1.0]"),
    (
        lambda: default_reference(np.zeros((0, 2)), TT),
        "default_reference needs at least one point or stl values",
    ),
    (lambda: WeightedPreference(()), "WeightedPreference weights must be a non-empty 1-D sequence"),
    (
        lambda: WeightedPreference([[1, 2]]),
        "WeightedPreference weights must be a non-empty 1-D sequence",
    ),
    (
        lambda: WeightedPreference((0, 0)),
        "WeightedPreference weights must be finite, non-negative and not all zero; got [0.0, 0.0]",
    ),
    (lambda: AtLeast(True, 0.5), "AtLeast(index=True, value=0.5) index must be an int"),
    (lambda: AtMost(1.0, 0.5), "AtMost(index=1.0, value=0.5) index must be an int"),
    (lambda: AtLeast(-1, 0.5), "AtLeast(index=-1, value=0.5) index must be non-negative"),
    (lambda: AtMost(0, np.inf), "AtMost(index=0, value=inf) value must be finite"),
    (
        lambda: select([[1, 2]], TT, "best"),
        f"unknown selection rule 'best'; allowed: {ALLOWED_RULES}",
    ),
    (lambda: select([[1, 2]], TT, 3), "unknown selection rule 3"),
    (lambda: select(np.zeros((0, 2)), TT), "cannot select from an empty set of points"),
    (
        lambda: select([[1, 2], [3, 0]], TT, AtLeast(0, 5)),
        "no point satisfies the constraint objective 0 >= 5.0 (closest: 3)",
    ),
    (
        lambda: select([[1, 2], [3, 0]], TT, AtMost(1, -1)),
        "no point satisfies the constraint objective 1 <= -1.0 (closest: 0)",
    ),
    (
        lambda: select([[1, 2]], TT, AtLeast(2, 5)),
        "objective 2 >= 5.0: index out of range for 2 objectives",
    ),
    (lambda: non_dominated_mask([[1, 2]], True), "maximize must be a sequence of bools, one per objective"),
    (
        lambda: non_dominated_mask([[1, 2]], [[True, False]]),
        "maximize must be a sequence of bools, one per objective",
    ),
    (lambda: non_dominated_mask([[1, 2]], [1, 2]), "maximize must hold only bools; got [1, 2]"),
    (lambda: non_dominated_mask([[1, 2]], [True]), "points have 2 objectives but maximize has 1 entries"),
    (lambda: non_dominated_mask([1, 2], TT), "points must be a 2-D array [n, k]; got shape (2,)"),
    (lambda: non_dominated_mask([[1, np.nan]], TT), "points must be finite (found NaN or inf)"),
    (lambda: to_minimization([[1, 2]], [True]), "maximize has 1 entries but there are 2 objectives"),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_one_line_errors(call, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call()


class TestFloatResults:
    def test_to_minimization_of_integers(self):
        out = to_minimization([[1, 2]], [True, False])
        assert out.dtype == np.float64 and out.tolist() == [[-1.0, 2.0]]

    def test_default_reference_of_integers(self):
        for margin in (1, [1, 1]):
            out = default_reference([[1, 2]], TT, stl=[3, 4], margin=margin)
            assert out.dtype == np.float64 and out.tolist() == [2.0, 3.0]

    def test_empty_mask_is_boolean(self):
        mask = non_dominated_mask(np.zeros((0, 2)), TT)
        assert mask.dtype == bool and mask.size == 0

    def test_delta_m_of_one_task(self):
        assert delta_m([0.6], [0.5], [True]) == pytest.approx(20.0)
        assert delta_m([0.4], [0.5], [False]) == pytest.approx(20.0)


class TestRuleValues:
    def test_weighted_preference_holds_float_tuples(self):
        rule = WeightedPreference(np.array([1, 3]))
        assert rule.weights == (1.0, 3.0) and type(rule.weights) is tuple
        assert all(type(x) is float for x in rule.weights)

    def test_one_weight_is_a_preference(self):
        assert WeightedPreference((2.0,)).weights == (2.0,)
        assert select([[0.2], [0.7]], [True], WeightedPreference((2.0,))) == 1

    def test_constraints_hold_an_int_and_a_float(self):
        rule = AtLeast(np.int64(1), 2)
        assert (rule.index, rule.value) == (1, 2.0)
        assert type(rule.index) is int and type(rule.value) is float


class TestConstraintScore:
    def test_two_objectives_score_the_other_one(self):
        # Both feasible and non-dominated: the other objective alone prefers B (0.7 > 0.5),
        # the mean of both would prefer A (0.7 > 0.65).
        points = [[0.9, 0.5], [0.6, 0.7]]
        assert select(points, TT, AtLeast(0, 0.5)) == 1
        assert select(points, TT, AtMost(0, 0.95)) == 1

    def test_one_objective_scores_itself_without_warnings(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert select([[0.2], [0.9], [0.5]], [True], AtMost(0, 0.6)) == 2


class TestTieTolerance:
    """Scores within 1e-12 · max(1, |best|) of the best are ties, won by the lower index."""

    def test_relative_tolerance_for_large_scores(self):
        points = [[4.0 - 4e-12, 0.5], [4.0, 0.0]]  # non-dominated; scores differ by 4e-12
        assert select(points, TT, WeightedPreference((1.0, 0.0))) == 0
        assert select([[4.0 - 8e-12, 0.5], [4.0, 0.0]], TT, WeightedPreference((1.0, 0.0))) == 1

    def test_absolute_tolerance_below_one(self):
        points = [[1.0 - 1.5e-12, 0.5], [1.0, 0.0]]  # 1.5e-12 apart: not a tie
        assert select(points, TT, WeightedPreference((1.0, 0.0))) == 1
        assert select([[1.0 - 0.5e-12, 0.5], [1.0, 0.0]], TT, WeightedPreference((1.0, 0.0))) == 0
