"""The contract of scalarize.search beyond its rules: exact one-line errors, normalised field
types, lineage records, documented draw orders and boundaries (PBT policy, fitness, designs)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest

from scalarize.search import (
    LineageRow,
    PBTPolicy,
    build_fitness,
    constrained,
    delta_m_fitness,
    dirichlet,
    grid,
    initial_rows,
    lattice,
    lineage_rows,
    mean_primary,
    quantile_count,
    schedule_of,
    sobol_simplex,
    validate_weights,
)
from scalarize.search.designs import MAX_LATTICE_POINTS
from scalarize.search.fitness import weighted_primary


def raises_exactly(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call()


def two(lr=None) -> list[dict]:
    return [{"weights": [1.0, 1.0], **({} if lr is None else {"lr": lr})}] * 2


RANGE = "a pair (low, high) with 0 < low < high, both finite"
POLICY_ERRORS = [
    ({"interval": 0}, "interval must be a positive int; got 0"),
    ({"quantile": 0}, "quantile must be a number in (0, 0.5]; got 0"),
    ({"factors": ()}, "factors must be a non-empty sequence of positive finite numbers; got ()"),
    (
        {"factors": {0.8}},
        "factors must be a non-empty sequence of positive finite numbers; got {0.8}",
    ),
    (
        {"factors": (0.0, 1.2)},
        "factors must be a non-empty sequence of positive finite numbers; got (0.0, 1.2)",
    ),
    ({"resample_probability": 2}, "resample_probability must be a number in [0, 1]; got 2"),
    ({"explore_lr": 1}, "explore_lr must be a bool; got 1"),
    ({"lr_bounds": (1e-3, math.inf)}, f"lr_bounds must be {RANGE}; got (0.001, inf)"),
    ({"lr_bounds": (0.1, 0.1)}, f"lr_bounds must be {RANGE}; got (0.1, 0.1)"),
    ({"lr_bounds": {0.1, 0.2}}, f"lr_bounds must be {RANGE}; got {{0.1, 0.2}}"),
    ({"dirichlet_alpha": 0}, "dirichlet_alpha must be a positive finite number; got 0"),
    ({"weight_floor": 0.5}, "weight_floor must be a number in [0, 0.01]; got 0.5"),
    ({"seed": -1}, "seed must be a non-negative int; got -1"),
]


class TestPolicyContract:
    @pytest.mark.parametrize("kwargs, message", POLICY_ERRORS)
    def test_config_errors(self, kwargs, message):
        raises_exactly(lambda: PBTPolicy(**{"interval": 1, **kwargs}), f"PBTPolicy.{message}")

    def test_fields_are_plain_python_values(self):
        p = PBTPolicy(
            interval=1,
            quantile=np.float32(0.25),
            resample_probability=1,
            explore_lr=np.bool_(True),
            dirichlet_alpha=2,
            weight_floor=0,
        )
        values = (p.quantile, p.resample_probability, p.dirichlet_alpha, p.weight_floor)
        assert values == (0.25, 1.0, 2.0, 0.0)
        assert all(type(v) is float for v in values)
        assert p.explore_lr is True

    @pytest.mark.parametrize(
        "call, message",
        [
            (
                lambda p: p.decide([0.1, 0.2], {"weights": [1, 1]}, 0),
                "hyperparams must be a list of 2 dicts (one per member); got dict",
            ),
            (
                lambda p: p.decide([0.1, 0.2], two()[:1], 0),
                "hyperparams must be a list of 2 dicts (one per member); got list of length 1",
            ),
            (
                lambda p: p.decide([0.1, 0.2], two(), 1.5),
                "step must be a non-negative int (the sync index) or a numpy Generator; got 1.5",
            ),
            (
                lambda p: p.decide([0.1, 0.2], two(lr=0), 1),
                "hyperparams[0]['lr'] must be a positive number; got 0",
            ),
            (
                lambda p: p.decide([0.1, 0.2], two(lr="0.1"), 1),
                "hyperparams[0]['lr'] must be a positive number; got '0.1'",
            ),
            (
                lambda p: p.generator(1.5),
                "step must be a non-negative int (the sync index); got 1.5",
            ),
            (
                lambda p: PBTPolicy(interval=1, explore_lr=True).explore([0.5, 0.5], None, np.random.default_rng(0)),
                "explore_lr is set but the member has no 'lr'",
            ),
            (
                lambda p: PBTPolicy(interval=1, weight_floor=0.01).decide(
                    [0.1, 0.2], [{"weights": [1.0] * 100}] * 2, 1
                ),
                "PBTPolicy.weight_floor must be < 1/k = 0.01 for 100 tasks; got 0.01",
            ),
            (
                lambda p: PBTPolicy(interval=1, weight_floor=0.01).decide(
                    [0.1, 0.2], [{"weights": [1.0] * 200}] * 2, 1
                ),
                "PBTPolicy.weight_floor must be < 1/k = 0.005 for 200 tasks; got 0.01",
            ),
        ],
    )
    def test_decide_errors(self, call, message):
        raises_exactly(lambda: call(PBTPolicy(interval=1)), message)

    def test_every_interval_of_one(self):
        assert [t for t in range(4) if PBTPolicy(interval=1).is_due(t)] == [1, 2, 3]

    def test_one_member_is_never_partitioned_even_diverged(self):
        rng = np.random.default_rng(0)
        assert PBTPolicy(interval=1).partition([math.nan], rng) == ([], [])

    def test_diverged_members_rank_last_in_permutation_order(self):
        f = np.array([0.3, math.nan, math.inf, 0.9, -math.inf, math.nan])
        order = PBTPolicy(interval=1).rank(f, np.random.default_rng(5))
        perm = np.random.default_rng(5).permutation(len(f))
        assert order[:2].tolist() == [3, 0]
        assert order[2:].tolist() == [m for m in perm.tolist() if not np.isfinite(f[m])]

    def test_explore_multiplies_by_the_drawn_factors(self):
        policy = PBTPolicy(interval=1, factors=(0.5, 3.0), resample_probability=0.0)
        w = np.array([0.2, 0.3, 0.5])
        out, _, resampled = policy.explore(w, None, np.random.default_rng(11))
        draws = np.random.default_rng(11)
        draws.random()  # the resample draw
        factors = np.array([0.5, 3.0])[draws.integers(2, size=3)]
        assert resampled == ()
        np.testing.assert_allclose(out, w * factors / (w * factors).sum(), rtol=1e-15)

    def test_quantile_count_below_half(self):
        assert quantile_count(10, 0.4) == 4 and quantile_count(9, 0.4) == 4
        assert quantile_count(1, 0.5) == 0


class TestLineage:
    def test_row_as_dict(self):
        row = LineageRow(3, 1, 0, (0.25, 0.75), 0.01, ("weights",))
        assert row.as_dict() == {
            "time": 3,
            "member": 1,
            "source": 0,
            "weights": [0.25, 0.75],
            "lr": 0.01,
            "resampled": ["weights"],
        }

    def test_rows_keep_lr_and_resampled(self):
        decisions = PBTPolicy(interval=1, resample_probability=1.0, explore_lr=True).decide(
            [0.1, 0.9], [{"weights": [1.0, 1.0], "lr": 0.1}, {"weights": [1.0, 3.0], "lr": 0.2}], 0
        )
        rows = lineage_rows(decisions, 4)
        moved = next(r for r in rows if r.source != r.member)
        assert moved.resampled == ("weights", "lr") and moved.lr == decisions[moved.member].lr
        kept = next(r for r in rows if r.source == r.member)
        assert kept.lr == 0.2 and kept.resampled == ()

    def test_initial_rows_with_and_without_lr(self):
        assert [r.lr for r in initial_rows([{"weights": [1, 1]}, {"weights": [1, 1], "lr": 0.3}])] == [
            None,
            0.3,
        ]

    def test_lr_schedule_from_plain_dicts(self):
        history = [
            {"time": 0, "member": 0, "source": 0, "weights": [0.5, 0.5], "lr": 0.1},
            {"time": 0, "member": 1, "source": 1, "weights": [0.2, 0.8], "lr": 0.2},
            {"time": 5, "member": 1, "source": 0, "weights": [0.6, 0.4], "lr": 0.15},
        ]
        assert schedule_of(1, history, key="lr") == [(0, 0.1), (5, 0.15)]


FITNESS_ERRORS = [
    (
        lambda: build_fitness({"name": "weighted"}, [("a", True)]),
        "fitness 'weighted' needs 'preference': one number per primary metric",
    ),
    (
        lambda: build_fitness({"name": "delta_m"}, [("a", True)]),
        "fitness 'delta_m' needs single-task values (stl); none were given",
    ),
    (
        lambda: build_fitness({"name": "mean_primary", "x": 1}, [("a", True)]),
        "fitness 'mean_primary': unknown key 'x'; allowed: ['name']",
    ),
    (lambda: build_fitness("mean_primary", []), "primary must name at least one metric"),
    (
        lambda: build_fitness("mean_primary", [("a",)]),
        "primary entries must be (metric name, higher_is_better) pairs; got ('a',)",
    ),
    (
        lambda: build_fitness("mean_primary", [{0: "a", 1: True}]),
        "primary entries must be (metric name, higher_is_better) pairs; got {0: 'a', 1: True}",
    ),
    (
        lambda: constrained("a", {"a": 0.5}, [("a", True)], penalty="1"),
        "constrained: penalty must be a positive finite number; got '1'",
    ),
]


class TestFitnessContract:
    @pytest.mark.parametrize("call, message", FITNESS_ERRORS, ids=[m[:30] for _, m in FITNESS_ERRORS])
    def test_errors(self, call, message):
        raises_exactly(call, message)

    @pytest.mark.parametrize(
        "preference",
        [[1.0], [-1.0, 2.0], [math.nan, 1.0], [0.0, 0.0]],
    )
    def test_rejects_preferences(self, preference):
        message = (
            "fitness 'weighted': preference must be 2 non-negative numbers with a positive sum; "
            f"got {list(np.asarray(preference, dtype=float))}"
        )
        raises_exactly(lambda: weighted_primary([("a", True), ("b", False)], preference), message)

    def test_accepts_zero_and_fractional_preferences(self):
        primary = [("a", True), ("b", False)]
        metrics = {"a": 0.8, "b": 0.3}
        assert weighted_primary(primary, [1.0, 0.0])(metrics) == pytest.approx(0.8)
        assert weighted_primary(primary, [0.5, 0.5])(metrics) == pytest.approx(0.25)
        assert weighted_primary(primary, [[1.0, 1.0]])(metrics) == pytest.approx(0.25)

    @pytest.mark.parametrize("metrics", [{"a": math.inf, "b": 0.6}, {"a": 0.9, "b": -math.inf}])
    def test_constrained_is_nan_when_a_metric_is_not_finite(self, metrics):
        fn = constrained("a", {"b": 0.5}, [("a", True), ("b", True)])
        assert math.isnan(fn(metrics))

    def test_small_penalty_is_allowed(self):
        fn = constrained("a", {"b": 0.5}, [("a", True), ("b", True)], penalty=0.5)
        assert fn({"a": 0.9, "b": 0.4}) == pytest.approx(0.9 - 0.5 * 1.1)

    def test_names(self):
        primary = [("a", True)]
        assert mean_primary(primary).__name__ == "mean_primary"
        assert weighted_primary(primary, [1.0]).__name__ == "weighted_primary"
        assert delta_m_fitness(primary, [0.5]).__name__ == "delta_m"
        assert constrained("a", {"a": 0.1}, primary).__name__ == "constrained"

        def my_fitness(metrics):
            return metrics["a"]

        class Scorer:
            def __call__(self, metrics):
                return 2 * metrics["a"]

        assert build_fitness(my_fitness, primary).__name__ == "my_fitness"
        user = build_fitness(Scorer(), primary)
        assert user.__name__ == "user" and user({"a": 0.25}) == 0.5


DESIGN_ERRORS = [
    (lambda: dirichlet(2, 1.0, 0), "n must be a positive int; got 1.0"),
    (
        lambda: lattice(2, 0.3),
        "1/step must be an integer; got step=0.3 (1/step = 3.33333333333)",
    ),
    (
        lambda: lattice(10, 0.01),
        "lattice(10, 0.01) would have 4263421511271 points (> 1000000); use a larger step or sobol_simplex/dirichlet",
    ),
    (lambda: lattice(2, 1.5), "step must be a number in (0, 1]; got 1.5"),
    (lambda: validate_weights([[1, 2]], 2), "weights must have 2 entries (one per task); got shape (1, 2)"),
    (lambda: validate_weights([1, 2, 3], 2), "weights must have 2 entries (one per task); got 3 entries"),
    (lambda: validate_weights([0, 0], 2), "weights must not all be zero"),
    (
        lambda: grid([[0.5, 0.5]], weights=[1]),
        "'weights' is reserved for the weight rows; rename that factor",
    ),
    (lambda: grid(np.zeros((0, 2))), "weights must be a non-empty 2-D array [n, k]; got shape (0, 2)"),
]


class TestDesignContract:
    @pytest.mark.parametrize("call, message", DESIGN_ERRORS, ids=[m[:30] for _, m in DESIGN_ERRORS])
    def test_errors(self, call, message):
        raises_exactly(call, message)

    def test_dirichlet_default_is_uniform_on_the_simplex(self):
        np.testing.assert_array_equal(dirichlet(3, 6, 2), dirichlet(3, 6, 2, alpha=1.0))

    def test_largest_lattice_is_allowed(self):
        assert MAX_LATTICE_POINTS == 1_000_000
        out = lattice(2, 1 / 999_999, include_uniform=False)  # exactly 1,000,000 points
        assert out.shape == (1_000_000, 2)

    def test_sobol_prefix(self):
        assert sobol_simplex(3, 5, 0).shape == (5, 3)
        np.testing.assert_array_equal(sobol_simplex(3, 5, 0), sobol_simplex(3, 9, 0)[:5])


def test_unknown_attribute_of_the_package():
    import scalarize.search

    with pytest.raises(AttributeError, match=r"^module 'scalarize.search' has no attribute 'nope'$"):
        scalarize.search.nope  # noqa: B018


def test_fitness_vector_is_float():
    from scalarize.search import fitness_vector

    out = fitness_vector(lambda metrics: len(metrics), [{}, {"a": 1.0}])
    assert out.dtype == np.float64 and out.tolist() == [0.0, 1.0]
