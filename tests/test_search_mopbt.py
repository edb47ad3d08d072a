"""MO-PBT (scalarize.search.mopbt): hand-computed fronts and scattered orders, decisions."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from scalarize.search import (
    DIVERSITY,
    MOPBTPolicy,
    PBTPolicy,
    crowding_distance,
    crowding_order,
    front_members,
    hypervolume_contributions,
    hypervolume_order,
    objective_matrix,
    scattered_order,
)
from scalarize.search.mopbt import hypervolume_reference

# Six members, two objectives, higher is better.
#   front 0: A (4, 1), C (1, 4), B (3, 3)      front 1: D (1.2, 2.2), F (2.5, 1.5)
#   front 2: E (1, 1)  (dominated by D)
# Order: A first (largest first objective); then C, farthest from A (√18 against √5 for B);
# then B. Front 1, measured against A, C, B: D is 1.811 from its nearest (C, √3.28), F 1.581
# (A and B, √2.5), so D before F although F has the larger first objective. Then E.
SIX = np.array(
    [
        [4.0, 1.0],  # 0 A
        [1.2, 2.2],  # 1 D
        [1.0, 4.0],  # 2 C
        [1.0, 1.0],  # 3 E
        [3.0, 3.0],  # 4 B
        [2.5, 1.5],  # 5 F
    ]
)
SIX_ORDER = [0, 2, 4, 1, 5, 3]


def hyper(n: int, k: int = 2, seed: int = 0) -> list[dict]:
    w = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    return [{"weights": w[m], "lr": 0.01 * (m + 1)} for m in range(n)]


def exploited(decisions) -> dict[int, int]:
    return {d.member: d.source for d in decisions if d.exploited}


class TestScatteredOrder:
    def test_hand_computed_six_points(self):
        assert scattered_order(SIX).tolist() == SIX_ORDER

    def test_order_does_not_depend_on_row_order(self):
        perm = np.array([5, 3, 1, 0, 4, 2])
        assert perm[scattered_order(SIX[perm])].tolist() == SIX_ORDER

    def test_ties_go_to_the_larger_first_objective(self):
        # Front 0: (3, 0), (0, 3), (0.1, 2.9), (2.9, 0.1); front 1: (0.1, 1.9), (1.9, 0.1).
        # After (3, 0) and (0, 3), both remaining front-0 points are √0.02 from their nearest;
        # in front 1 both are 1.0 from theirs: each tie goes to the larger first objective.
        pts = np.array([[3.0, 0.0], [0.0, 3.0], [0.1, 2.9], [2.9, 0.1], [0.1, 1.9], [1.9, 0.1]])
        assert scattered_order(pts).tolist() == [0, 1, 3, 2, 5, 4]

    def test_equal_first_objectives_keep_the_member_order(self):
        # Twenty members on one front (three objectives), first objective 0, 1 or 2: the first
        # pick is the lowest index among those with a 2, whatever the sort's algorithm.
        i = np.arange(20.0)
        first = np.array([1, 1, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2, 1, 1, 2, 1, 2, 2, 0], float)
        pts = np.c_[first, i, -i]
        order = scattered_order(pts)
        assert order[0] == 5
        assert sorted(order.tolist()) == list(range(20))

    def test_duplicates_go_last_in_their_front(self):
        pts = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [1.0, 1.5]])
        assert scattered_order(pts).tolist() == [0, 1, 3, 2]

    def test_one_member_and_one_objective(self):
        assert scattered_order(np.array([[0.3, 0.7]])).tolist() == [0]
        assert scattered_order(np.array([[0.2], [0.9], [0.5]])).tolist() == [1, 2, 0]


class TestCrowding:
    # One front of four: P0 (0, 10), P1 (1, 9), P2 (5, 4), P3 (10, 0); both ranges are 10.
    # Objective 1 sorted: P0, P1, P2, P3: P1 adds (5 − 0)/10 = 0.5, P2 (10 − 1)/10 = 0.9.
    # Objective 2 sorted: P3, P2, P1, P0: P2 adds (9 − 0)/10 = 0.9, P1 (10 − 4)/10 = 0.6.
    # So P1 = 1.1, P2 = 1.8, the ends inf: order P0, P3 (ends, row order), P2, P1.
    FOUR = np.array([[0.0, 10.0], [1.0, 9.0], [5.0, 4.0], [10.0, 0.0]])

    def test_hand_computed_distances(self):
        assert crowding_distance(self.FOUR) == pytest.approx([math.inf, 1.1, 1.8, math.inf])

    def test_hand_computed_order(self):
        assert crowding_order(self.FOUR).tolist() == [0, 3, 2, 1]

    def test_six_points(self):
        # front 0 (A, C, B): B's distance is 3/3 + 3/3 = 2, A and C are ends (inf); front 1
        # (D, F) has two members, both inf: row order; then E.
        assert crowding_distance(SIX[[0, 2, 4]]).tolist() == [math.inf, math.inf, 2.0]
        assert crowding_order(SIX).tolist() == [0, 2, 4, 1, 5, 3]

    def test_a_constant_objective_adds_nothing(self):
        pts = np.c_[self.FOUR, np.full(4, 7.0)]
        assert crowding_distance(pts) == pytest.approx([math.inf, 1.1, 1.8, math.inf])

    def test_small_fronts_are_all_ends(self):
        assert crowding_distance(np.array([[1.0, 2.0]])).tolist() == [math.inf]
        assert crowding_order(np.array([[0.2], [0.9], [0.5]])).tolist() == [1, 2, 0]
        assert crowding_order(np.zeros((0, 2))).tolist() == []


class TestHypervolume:
    # SIX with the reference (0.7, 0.7): each objective's worst (1) minus a tenth of its range
    # (3). Front 0: A (4, 1) alone covers x in (3, 4], y in (0.7, 1]: 1 × 0.3; C (1, 4) likewise
    # 0.3 × 1; B (3, 3) alone covers (1, 3] × (1, 3]: 4. Front 1: D (1.2, 2.2) alone covers
    # (0.7, 1.2] × (1.5, 2.2] = 0.35, F (2.5, 1.5) covers (1.2, 2.5] × (0.7, 1.5] = 1.04.
    # Order: B, A, C (tie: row order), F, D, E.
    def test_reference(self):
        assert hypervolume_reference(SIX) == pytest.approx([0.7, 0.7])

    def test_hand_computed_contributions(self):
        ref = np.array([0.7, 0.7])
        assert hypervolume_contributions(SIX[[0, 2, 4]], ref) == pytest.approx([0.3, 0.3, 4.0])
        assert hypervolume_contributions(SIX[[1, 5]], ref) == pytest.approx([0.35, 1.04])

    def test_hand_computed_order(self):
        assert hypervolume_order(SIX).tolist() == [4, 0, 2, 5, 1, 3]

    def test_duplicates_contribute_nothing(self):
        pts = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [1.0, 1.5]])
        assert hypervolume_contributions(pts, np.array([-1.0, -1.0]))[[0, 2]].tolist() == [0.0, 0.0]
        assert hypervolume_order(pts).tolist() == [3, 1, 0, 2]

    def test_one_objective(self):
        pts = np.array([[0.2], [0.9], [0.5]])
        assert hypervolume_contributions(pts, np.array([0.0])).tolist() == pytest.approx([0.0, 0.4, 0.0])
        assert hypervolume_order(pts).tolist() == [1, 2, 0]


class TestDiversityOption:
    def test_names(self):
        assert list(DIVERSITY) == ["scattered", "crowding", "hypervolume"]
        assert MOPBTPolicy(interval=1).diversity == "scattered"

    @pytest.mark.parametrize("diversity", ["scattered", "crowding", "hypervolume"])
    def test_rank_is_the_order_of_the_shuffled_members(self, diversity):
        # rank shuffles the members once (ties must not favour low indices), then orders them
        for seed in range(5):
            perm = np.random.default_rng(seed).permutation(6)
            rank = MOPBTPolicy(interval=1, diversity=diversity).rank(SIX, np.random.default_rng(seed))
            assert rank.tolist() == perm[DIVERSITY[diversity](SIX[perm])].tolist()

    def test_hypervolume_changes_who_is_copied(self):
        # bottom 2 of 6: scattered drops F and E; hypervolume drops D and E (and copies B, A or C:
        # A and C tie, so the shuffle picks the second source)
        for step in range(10):
            hv = exploited(MOPBTPolicy(interval=1, diversity="hypervolume").decide(SIX, hyper(6), step))
            assert sorted(hv) == [1, 3] and set(hv.values()) <= {4, 0, 2}
            assert sorted(exploited(MOPBTPolicy(interval=1).decide(SIX, hyper(6), step))) == [3, 5]

    def test_rejects_unknown(self):
        message = "MOPBTPolicy.diversity must be one of 'scattered', 'crowding', 'hypervolume'; got 'nsga'"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            MOPBTPolicy(interval=1, diversity="nsga")


class TestFrontOfASearch:
    def test_front_ordered_by_fitness(self):
        policy = MOPBTPolicy(interval=1, maximize=[True, False])
        losses = SIX * np.array([1.0, -1.0])
        assert policy.front([1, 2, 3, 4, 5, 6], losses) == [4, 2, 0]
        assert policy.front([1, 2, 3, 4, math.nan, 6], losses) == [2, 0, 4]
        assert policy.front([0, 0, 0, 0, 0, 0], np.full((6, 2), math.nan)) == []

    def test_pbt_returns_its_best_member(self):
        policy = PBTPolicy(interval=1)
        assert policy.front([0.1, math.nan, 0.7, 0.7], SIX[:4]) == [2]
        assert policy.front([math.nan, math.nan], SIX[:2]) == []

    def test_ranking_fitness(self):
        f, obj = np.arange(6.0), SIX
        assert PBTPolicy(interval=1).ranking_fitness(f, obj).tolist() == f.tolist()
        assert MOPBTPolicy(interval=1).ranking_fitness(f, obj).tolist() == SIX.tolist()


class TestFront:
    def test_hand_computed(self):
        assert front_members(SIX).tolist() == [0, 2, 4]

    def test_directions(self):
        mixed = SIX * np.array([1.0, -1.0])  # second objective now lower is better
        assert front_members(mixed, maximize=[True, False]).tolist() == [0, 2, 4]
        assert front_members(mixed).tolist() != [0, 2, 4]

    def test_diverged_members_are_never_on_the_front(self):
        values = SIX.copy()
        values[4] = [math.inf, 9.0]
        values[2, 1] = math.nan
        assert front_members(values).tolist() == [0, 1, 5]

    def test_rejects_a_vector(self):
        with pytest.raises(ValueError, match=r"^objectives must be a 2-D array \[N, K\]; got shape \(2,\)$"):
            front_members([1.0, 2.0])


class TestObjectiveMatrix:
    def test_rows_in_name_order(self):
        metrics = [{"a/acc": 0.9, "b/mse": 0.2}, {}, {"b/mse": 0.1, "a/acc": 0.8, "x": 1.0}]
        out = objective_matrix(metrics, ["a/acc", "b/mse"])
        assert out.shape == (3, 2)
        assert out[0].tolist() == [0.9, 0.2] and out[2].tolist() == [0.8, 0.1]
        assert np.isnan(out[1]).all()

    def test_missing_metric(self):
        with pytest.raises(ValueError, match=r"member 1: metric 'b' is missing \(have \['a'\]\)"):
            objective_matrix([{"a": 1.0, "b": 2.0}, {"a": 1.0}], ["a", "b"])

    def test_empty_population(self):
        assert objective_matrix([], ["a", "b"]).shape == (0, 2)


class TestConfig:
    def test_defaults_and_inherited_fields(self):
        p = MOPBTPolicy(interval=3, quantile=0.5, seed=4)
        assert (p.maximize, p.normalize, p.interval, p.quantile, p.seed) == (None, False, 3, 0.5, 4)
        assert isinstance(p, PBTPolicy)

    def test_normalises_maximize(self):
        assert MOPBTPolicy(interval=1, maximize=[True, np.bool_(False)]).maximize == (True, False)

    @pytest.mark.parametrize("value", [[1, 0], "tf", [], True, [True, None]])
    def test_rejects_maximize(self, value):
        message = f"MOPBTPolicy.maximize must be None or a list of bools; got {value!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            MOPBTPolicy(interval=1, maximize=value)

    def test_accepts_arrays_and_numpy_bools(self):
        p = MOPBTPolicy(interval=1, maximize=np.array([True, False]), normalize=np.bool_(True))
        assert p.maximize == (True, False) and type(p.maximize[0]) is bool
        assert p.normalize is True

    def test_rejects_normalize(self):
        with pytest.raises(ValueError, match=r"^MOPBTPolicy\.normalize must be a bool; got 1$"):
            MOPBTPolicy(interval=1, normalize=1)

    def test_inherited_checks_still_run(self):
        with pytest.raises(ValueError, match=r"^PBTPolicy\.quantile"):
            MOPBTPolicy(interval=1, quantile=0.9)


class TestDecide:
    def test_bottom_copies_top_by_the_hand_computed_order(self):
        policy = MOPBTPolicy(interval=1, seed=3)  # N = 6, q = 0.25: 2 on top, 2 at the bottom
        for step in range(20):
            moves = exploited(policy.decide(SIX, hyper(6), step))
            assert sorted(moves) == [3, 5]  # the last two of SIX_ORDER
            assert set(moves.values()) <= {0, 2}  # the first two

    def test_others_keep_their_hyperparameters(self):
        hp = hyper(6)
        for d in MOPBTPolicy(interval=1).decide(SIX, hp, 0):
            if not d.exploited:
                assert d.weights.tolist() == list(hp[d.member]["weights"])
                assert d.lr == hp[d.member]["lr"]

    def test_exploited_members_explore_their_source(self):
        policy = MOPBTPolicy(interval=1, seed=1, explore_lr=True)
        hp = hyper(6)
        decisions = policy.decide(SIX, hp, 5)
        rng = policy.generator(5)
        top, bottom = policy.partition(policy.fitness_array(SIX), rng)
        assert (top, bottom) == ([0, 2], [3, 5])
        for m in bottom:
            src = top[int(rng.integers(len(top)))]
            w, lr, resampled = policy.explore(hp[src]["weights"], hp[src]["lr"], rng)
            d = decisions[m]
            assert (d.source, d.weights.tolist(), d.lr, d.resampled) == (
                src,
                w.tolist(),
                lr,
                resampled,
            )

    def test_lower_is_better_metric_is_minimised(self):
        # accuracy (higher better), MSE (lower better); member 0 dominates, member 3 is worst.
        f = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.5, 0.9]])
        right = MOPBTPolicy(interval=1, maximize=[True, False])
        wrong = MOPBTPolicy(interval=1)  # treats the MSE as higher-is-better
        assert exploited(right.decide(f, hyper(4), 0)) == {3: 0}
        assert 3 not in exploited(wrong.decide(f, hyper(4), 0))

    def test_maximize_equals_negating_the_column(self):
        losses = SIX * np.array([1.0, -1.0])
        a = MOPBTPolicy(interval=1, seed=7, maximize=[True, False]).decide(losses, hyper(6), 2)
        b = MOPBTPolicy(interval=1, seed=7).decide(SIX, hyper(6), 2)
        assert [(d.source, d.weights.tolist()) for d in a] == [(d.source, d.weights.tolist()) for d in b]

    def test_diverged_members_are_replaced_and_never_sources(self):
        f = SIX.copy()
        f[0, 1] = math.nan  # A, the best, diverged
        for step in range(10):
            moves = exploited(MOPBTPolicy(interval=1).decide(f, hyper(6), step))
            assert 0 in moves and 0 not in moves.values()
            assert set(moves.values()) <= {2, 4}  # the next two of the order: C then B

    @pytest.mark.parametrize("normalize", [False, True])
    def test_all_diverged(self, normalize):
        with pytest.raises(ValueError, match="all 3 members diverged"):
            MOPBTPolicy(interval=1, normalize=normalize).decide(np.full((3, 2), np.nan), hyper(3), 0)

    def test_population_of_one_keeps_itself(self):
        (d,) = MOPBTPolicy(interval=1).decide([[0.2, 0.4]], hyper(1), 0)
        assert not d.exploited

    @pytest.mark.parametrize("bad", [[0.1, 0.2, 0.3], np.zeros((0, 2)), np.zeros((2, 0))])
    def test_rejects_shapes(self, bad):
        message = f"fitness must be a non-empty 2-D array [members, objectives]; got shape {np.shape(bad)}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            MOPBTPolicy(interval=1).decide(bad, hyper(max(len(bad), 1)), 0)

    def test_rejects_wrong_number_of_directions(self):
        message = "MOPBTPolicy.maximize has 3 entries but fitness has 2 objectives"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            MOPBTPolicy(interval=1, maximize=[True] * 3).decide(SIX, hyper(6), 0)
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            front_members(SIX, maximize=[True] * 3)

    def test_one_objective_is_plain_pbt(self):
        f = np.array([0.3, 0.9, 0.1, 0.7, 0.5, 0.2, 0.8, 0.4])
        for step in range(5):
            mo = MOPBTPolicy(interval=1, seed=2).decide(f[:, None], hyper(8), step)
            so = PBTPolicy(interval=1, seed=2).decide(f, hyper(8), step)
            assert [(d.source, d.weights.tolist()) for d in mo] == [(d.source, d.weights.tolist()) for d in so]


class TestNormalize:
    # A (1, 0), B (0.5, 10), D (0.05, 50), C (0, 100): one front. After A and C, raw distances
    # (the second objective's scale dominates) put D (50 from A and C) before B (10.01 from A);
    # divided by the ranges (1, 100), B (0.51) comes before D (0.502).
    POINTS = np.array([[1.0, 0.0], [0.5, 10.0], [0.05, 50.0], [0.0, 100.0]])

    def test_raw_and_normalised_orders(self):
        rng = np.random.default_rng(0)
        raw = MOPBTPolicy(interval=1).rank(self.POINTS, np.random.default_rng(0))
        scaled = MOPBTPolicy(interval=1, normalize=True).rank(self.POINTS, rng)
        assert raw.tolist() == [0, 3, 2, 1]
        assert scaled.tolist() == [0, 3, 1, 2]

    def test_normalised_order_ignores_each_objective_scale(self):
        rescaled = self.POINTS * np.array([0.5, 3.0])  # ranges 0.5 and 300
        order = MOPBTPolicy(interval=1, normalize=True).rank(rescaled, np.random.default_rng(0))
        assert order.tolist() == [0, 3, 1, 2]
        assert order.dtype == np.int64

    def test_constant_objective_is_left_alone(self):
        # A zero range divides by 1, not 0: the distances stay finite and C (farthest from A)
        # precedes B; 0 / 0 would make every distance NaN and leave the first-objective order.
        pts = np.array([[1.0, 0.0, 5.0], [0.9, 0.1, 5.0], [0.0, 1.0, 5.0]])
        order = MOPBTPolicy(interval=1, normalize=True).rank(pts, np.random.default_rng(0))
        assert order.tolist() == [0, 2, 1]


def test_pure_logic_module():
    text = (Path(__file__).resolve().parents[1] / "src/scalarize/search/mopbt.py").read_text()
    assert "import torch" not in text and "open(" not in text
