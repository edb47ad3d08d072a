"""Tests of the PBT policy (scalarize.search.pbt), PBT fitness (fitness) and PB2 explore (pb2)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scalarize.search import (
    FITNESS_NAMES,
    Decision,
    LineageRow,
    PBTPolicy,
    build_fitness,
    constrained,
    delta_m_fitness,
    fitness_vector,
    initial_rows,
    lineage_rows,
    mean_primary,
    quantile_count,
    schedule_of,
)


def hyper(n: int, k: int = 3, lr: float | None = 0.1, seed: int = 0) -> list[dict]:
    """``n`` members with distinct Dirichlet weights and lrs ``lr * (m + 1)``."""
    w = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    return [{"weights": w[m], **({} if lr is None else {"lr": lr * (m + 1)})} for m in range(n)]


def exploited(decisions: list[Decision]) -> list[int]:
    return [d.member for d in decisions if d.exploited]


def within(count: int, trials: int, p: float, sigmas: float = 4.0) -> bool:
    """``count / trials`` is within ``sigmas`` binomial standard deviations of ``p``."""
    std = math.sqrt(p * (1 - p) / trials)
    return abs(count / trials - p) <= sigmas * std


# --------------------------------------------------------------------------- config


class TestConfig:
    def test_defaults(self):
        p = PBTPolicy(interval=2)
        assert (p.quantile, p.factors, p.resample_probability) == (0.25, (0.8, 1.2), 0.25)
        assert (p.explore_lr, p.lr_bounds, p.dirichlet_alpha) == (False, (1e-5, 1.0), 1.0)
        assert (p.weight_floor, p.seed) == (1e-6, 0)

    def test_normalises_types(self):
        p = PBTPolicy(interval=np.int64(3), factors=[1, 2], lr_bounds=[1e-3, 1], seed=np.int32(4))
        assert p.interval == 3 and type(p.interval) is int
        assert p.factors == (1.0, 2.0) and p.lr_bounds == (1e-3, 1.0)
        assert type(p.seed) is int

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"interval": 0}, "interval"),
            ({"interval": 1.5}, "interval"),
            ({"interval": True}, "interval"),
            ({"quantile": 0}, "quantile"),
            ({"quantile": 0.6}, "quantile"),
            ({"quantile": "0.2"}, "quantile"),
            ({"factors": ()}, "factors"),
            ({"factors": (0.8, -1.2)}, "factors"),
            ({"factors": (0.8, math.inf)}, "factors"),
            ({"factors": "0.8"}, "factors"),
            ({"resample_probability": -0.1}, "resample_probability"),
            ({"resample_probability": 1.5}, "resample_probability"),
            ({"explore_lr": 1}, "explore_lr"),
            ({"lr_bounds": (1.0, 0.1)}, "lr_bounds"),
            ({"lr_bounds": (0.0, 0.1)}, "lr_bounds"),
            ({"lr_bounds": (1e-3,)}, "lr_bounds"),
            ({"dirichlet_alpha": 0}, "dirichlet_alpha"),
            ({"dirichlet_alpha": math.nan}, "dirichlet_alpha"),
            ({"weight_floor": -1e-6}, "weight_floor"),
            ({"weight_floor": 0.5}, "weight_floor"),
            ({"seed": -1}, "seed"),
            ({"seed": 1.0}, "seed"),
        ],
    )
    def test_rejects(self, kwargs, field):
        with pytest.raises(ValueError, match=rf"^PBTPolicy\.{field} must be [^\n]*; got") as e:
            PBTPolicy(**{"interval": 1, **kwargs})
        assert "\n" not in str(e.value)

    def test_frozen(self):
        with pytest.raises(dataclasses.FrozenInstanceError):
            PBTPolicy(interval=1).quantile = 0.5  # type: ignore[misc]

    def test_is_due(self):
        p = PBTPolicy(interval=3)
        assert [t for t in range(10) if p.is_due(t)] == [3, 6, 9]
        assert not p.is_due(1.5) and not p.is_due(-3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- quantiles


class TestQuantiles:
    @pytest.mark.parametrize(
        "q, expected",  # N = 0, 1, ..., 8: ceil(N q) capped at floor(N / 2) (Ray Tune)
        [
            (0.25, [0, 0, 1, 1, 1, 2, 2, 2, 2]),
            (0.5, [0, 0, 1, 1, 2, 2, 3, 3, 4]),
            (0.2, [0, 0, 1, 1, 1, 1, 2, 2, 2]),
            (0.01, [0, 0, 1, 1, 1, 1, 1, 1, 1]),
        ],
    )
    def test_table(self, q, expected):
        assert [quantile_count(n, q) for n in range(9)] == expected

    def test_bounds(self):
        for q in (0.01, 0.1, 0.25, 1 / 3, 0.49, 0.5):
            for n in range(2, 60):
                assert 1 <= quantile_count(n, q) <= n // 2

    def test_rejects_bad_n(self):
        with pytest.raises(ValueError, match="n must be"):
            quantile_count(-1, 0.25)

    @pytest.mark.parametrize("n", range(1, 9))
    @pytest.mark.parametrize("q", [0.25, 0.5])
    def test_bottom_copies_top(self, n, q):
        policy = PBTPolicy(interval=1, quantile=q)
        num = quantile_count(n, q)
        for step in range(20):
            fitness = np.random.default_rng(step).permutation(n).astype(float)
            ds = policy.decide(fitness, hyper(n), step)
            assert [d.member for d in ds] == list(range(n))
            ranked = list(np.argsort(-fitness))  # distinct values: no ties
            assert sorted(exploited(ds)) == sorted(ranked[n - num :])
            sources = {d.source for d in ds if d.exploited}
            assert sources <= set(ranked[:num])
            assert not sources & set(exploited(ds))
            if n == 1:
                assert not exploited(ds)

    def test_all_top_members_can_be_sources(self):
        policy = PBTPolicy(interval=1, quantile=0.5)
        fitness = np.arange(8.0)  # top = 7, 6, 5, 4
        seen = set()
        for step in range(50):
            seen |= {d.source for d in policy.decide(fitness, hyper(8), step) if d.exploited}
        assert seen == {4, 5, 6, 7}

    def test_source_drawn_uniformly(self):
        policy = PBTPolicy(interval=1, quantile=0.5)
        fitness = np.array([0.0, 1.0, 2.0, 3.0])  # bottom 0, 1; top 3, 2
        trials, hits = 0, 0
        for step in range(1000):
            for d in policy.decide(fitness, hyper(4), step):
                if d.exploited:
                    trials += 1
                    hits += d.source == 3
        assert within(hits, trials, 0.5)

    def test_partition(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        top, bottom = policy.partition([0.1, 0.9, 0.5, 0.3, 0.7], np.random.default_rng(0))
        assert top == [1, 4] and bottom == [0, 3]
        assert policy.partition([1.0], np.random.default_rng(0)) == ([], [])


# --------------------------------------------------------------------------- diverged, ties


class TestDiverged:
    def test_nan_members_always_replaced(self):
        policy = PBTPolicy(interval=1, quantile=0.25)  # num = 2 for N = 8
        fitness = np.array([0.5, np.nan, 0.7, np.nan, 0.1, np.nan, 0.9, np.nan])
        ds = policy.decide(fitness, hyper(8), 0)
        assert exploited(ds) == [1, 3, 5, 7]  # larger than the quantile
        assert {d.source for d in ds if d.exploited} <= {6, 2}

    def test_one_nan_fills_the_bottom_first(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        fitness = np.array([0.5, 0.2, 0.7, np.nan, 0.1, 0.3, 0.9, 0.8])
        assert exploited(policy.decide(fitness, hyper(8), 0)) == [3, 4]

    @pytest.mark.parametrize("bad", [np.nan, -np.inf, np.inf])
    def test_non_finite_is_diverged(self, bad):
        policy = PBTPolicy(interval=1, quantile=0.25)
        fitness = np.array([0.5, bad, 0.7, 0.1])
        ds = policy.decide(fitness, hyper(4), 0)
        assert exploited(ds) == [1]
        assert ds[1].source == 2

    def test_single_finite_member_is_everyone_source(self):
        policy = PBTPolicy(interval=1)
        fitness = np.array([np.nan, np.nan, 0.3, np.nan, np.nan])
        ds = policy.decide(fitness, hyper(5), 0)
        assert exploited(ds) == [0, 1, 3, 4]
        assert all(d.source == 2 for d in ds if d.exploited)

    def test_all_diverged_raises(self):
        with pytest.raises(ValueError, match="all 3 members diverged"):
            PBTPolicy(interval=1).decide([np.nan] * 3, hyper(3), 0)

    def test_population_of_one_never_exploits(self):
        ds = PBTPolicy(interval=1).decide([np.nan], hyper(1), 0)
        assert len(ds) == 1 and not ds[0].exploited


class TestTies:
    def test_all_equal_is_deterministic_per_step(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        f = np.zeros(8)
        a = exploited(policy.decide(f, hyper(8), 5))
        assert a == exploited(policy.decide(f, hyper(8), 5)) and len(a) == 2

    def test_ties_do_not_favour_low_indices(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        f, n, trials = np.zeros(8), 8, 500
        counts = np.zeros(n, dtype=int)
        for step in range(trials):
            counts[exploited(policy.decide(f, hyper(n), step))] += 1
        assert all(within(c, trials, 2 / n) for c in counts), counts

    def test_ties_only_reorder_equals(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        f = np.array([3.0, 2.0, 2.0, 1.0])  # num = 1: bottom is 3, top is 0 whatever the ties
        for step in range(30):
            ds = policy.decide(f, hyper(4), step)
            assert exploited(ds) == [3] and ds[3].source == 0

    def test_tie_at_the_boundary_is_split_by_the_permutation(self):
        policy = PBTPolicy(interval=1, quantile=0.25)
        f = np.array([3.0, 1.0, 1.0, 2.0])  # bottom is 1 or 2
        seen = {tuple(exploited(policy.decide(f, hyper(4), s))) for s in range(40)}
        assert seen == {(1,), (2,)}

    def test_rank(self):
        policy = PBTPolicy(interval=1)
        order = policy.rank([0.2, np.nan, 0.9, -np.inf, 0.5], np.random.default_rng(0))
        assert list(order[:3]) == [2, 4, 0] and set(order[3:]) == {1, 3}


# --------------------------------------------------------------------------- explore


class TestExplore:
    def test_simplex_kept_under_many_explores(self):
        k = 5
        policy = PBTPolicy(interval=1, factors=(0.5, 2.0), resample_probability=0.1)
        rng = np.random.default_rng(0)
        w = np.full(k, 1 / k)
        lowest = policy.weight_floor / (1 + k * policy.weight_floor)
        for _ in range(3000):
            w, _, _ = policy.explore(w, None, rng)
            assert w.shape == (k,) and w.dtype == np.float64
            assert abs(w.sum() - 1) < 1e-12
            assert w.min() >= lowest * (1 - 1e-12)

    def test_floor_keeps_sparse_dirichlet_draws_off_zero(self):
        policy = PBTPolicy(interval=1, resample_probability=1.0, dirichlet_alpha=1e-3)
        rng = np.random.default_rng(1)
        for _ in range(300):
            w, _, resampled = policy.explore(np.full(4, 0.25), None, rng)
            assert resampled == ("weights",)
            assert w.min() > 0 and abs(w.sum() - 1) < 1e-12

    def test_no_floor_allows_zero(self):
        policy = PBTPolicy(interval=1, resample_probability=0.0, weight_floor=0.0)
        w, _, _ = policy.explore([0.0, 1.0], None, np.random.default_rng(0))
        assert w.tolist() == [0.0, 1.0]

    def test_weight_factor_frequencies(self):
        # k = 2: the ratio (w0'/w1') / (w0/w1) = f0 / f1 is 1 (p 1/2), 1.5 or 2/3 (p 1/4 each)
        policy = PBTPolicy(interval=1, resample_probability=0.0)
        rng = np.random.default_rng(2)
        w = np.array([0.4, 0.6])
        trials = 4000
        ratios = []
        for _ in range(trials):
            v, _, resampled = policy.explore(w, None, rng)
            assert resampled == ()
            ratios.append((v[0] / v[1]) / (w[0] / w[1]))
        ratios = np.array(ratios)
        same = np.isclose(ratios, 1.0)
        up = np.isclose(ratios, 1.5)
        down = np.isclose(ratios, 0.8 / 1.2)
        assert np.all(same | up | down)
        assert within(same.sum(), trials, 0.5)
        assert within(up.sum(), trials, 0.25)
        assert within(down.sum(), trials, 0.25)

    def test_lr_factor_frequency(self):
        policy = PBTPolicy(interval=1, resample_probability=0.0, explore_lr=True)
        rng = np.random.default_rng(3)
        trials = 4000
        lrs = np.array([policy.explore([0.5, 0.5], 0.01, rng)[1] for _ in range(trials)])
        up, down = np.isclose(lrs, 0.012), np.isclose(lrs, 0.008)
        assert np.all(up | down)
        assert within(up.sum(), trials, 0.5)

    @pytest.mark.parametrize("r", [0.1, 0.25, 0.6])
    def test_resample_frequency(self, r):
        policy = PBTPolicy(interval=1, resample_probability=r, explore_lr=True)
        rng = np.random.default_rng(4)
        trials = 3000
        out = [policy.explore([0.2, 0.3, 0.5], 0.01, rng)[2] for _ in range(trials)]
        n_w = sum("weights" in o for o in out)
        n_lr = sum("lr" in o for o in out)
        n_both = sum(o == ("weights", "lr") for o in out)
        assert within(n_w, trials, r)
        assert within(n_lr, trials, r)
        assert within(n_both, trials, r * r)  # independent decisions

    def test_resample_probability_extremes(self):
        rng = np.random.default_rng(5)
        never = PBTPolicy(interval=1, resample_probability=0.0, explore_lr=True)
        always = PBTPolicy(interval=1, resample_probability=1.0, explore_lr=True)
        for _ in range(200):
            assert never.explore([0.5, 0.5], 0.1, rng)[2] == ()
            assert always.explore([0.5, 0.5], 0.1, rng)[2] == ("weights", "lr")

    def test_resampled_weights_are_dirichlet(self):
        policy = PBTPolicy(interval=1, resample_probability=1.0)
        rng = np.random.default_rng(6)
        draws = np.array([policy.explore([1.0, 0.0, 0.0], None, rng)[0] for _ in range(3000)])
        # Dirichlet(1, 1, 1): mean 1/3, variance (1/3)(2/3)/4 = 1/18 per coordinate
        np.testing.assert_allclose(draws.mean(axis=0), 1 / 3, atol=4 * math.sqrt(1 / 18 / 3000))

    def test_lr_clipped_to_bounds(self):
        policy = PBTPolicy(
            interval=1,
            resample_probability=0.0,
            explore_lr=True,
            lr_bounds=(0.01, 0.1),
            factors=(2.0,),
        )
        rng = np.random.default_rng(7)
        assert policy.explore([1.0], 0.08, rng)[1] == 0.1
        low = dataclasses.replace(policy, factors=(0.5,))
        assert low.explore([1.0], 0.011, rng)[1] == 0.01

    def test_lr_resampled_log_uniformly_within_bounds(self):
        policy = PBTPolicy(interval=1, resample_probability=1.0, explore_lr=True, lr_bounds=(1e-4, 1.0))
        rng = np.random.default_rng(8)
        trials = 2000
        lrs = np.array([policy.explore([1.0], 0.5, rng)[1] for _ in range(trials)])
        assert lrs.min() >= 1e-4 and lrs.max() <= 1.0
        assert within(int((lrs < 1e-2).sum()), trials, 0.5)  # the geometric midpoint
        assert within(int((lrs < 1e-3).sum()), trials, 0.25)

    def test_lr_untouched_without_explore_lr(self):
        policy = PBTPolicy(interval=1)
        assert policy.explore([0.5, 0.5], 0.3, np.random.default_rng(0))[1] == 0.3


# --------------------------------------------------------------------------- decisions


class TestDecide:
    def test_contents(self):
        policy = PBTPolicy(interval=1, factors=(1.0,), resample_probability=0.0)
        hp = hyper(4, k=3)
        hp[2]["weights"] = [2.0, 1.0, 1.0]  # not on the simplex: kept as given if not exploited
        ds = policy.decide([0.1, 0.9, 0.5, 0.3], hp, 0)
        assert exploited(ds) == [0]
        d = ds[0]
        assert d.source == 1 and d.resampled == ()
        np.testing.assert_allclose(d.weights, hp[1]["weights"], rtol=1e-12)
        assert d.lr == hp[1]["lr"]  # the source's lr is copied (explore_lr off)
        assert ds[2].weights.tolist() == [2.0, 1.0, 1.0]
        for m in (1, 2, 3):
            assert ds[m].source == m and ds[m].lr == hp[m]["lr"] and ds[m].resampled == ()

    def test_exploited_weights_on_simplex(self):
        policy = PBTPolicy(interval=1, quantile=0.5, explore_lr=True)
        for step in range(30):
            for d in policy.decide(np.arange(6.0), hyper(6), step):
                if d.exploited:
                    assert abs(d.weights.sum() - 1) < 1e-12 and d.weights.min() > 0
                    assert 1e-5 <= d.lr <= 1.0

    def test_inputs_not_mutated(self):
        hp = hyper(4)
        before = [dict(h, weights=h["weights"].copy()) for h in hp]
        f = np.array([0.1, 0.9, 0.5, 0.3])
        ds = PBTPolicy(interval=1).decide(f, hp, 0)
        for h, b in zip(hp, before):
            assert np.array_equal(h["weights"], b["weights"]) and h["lr"] == b["lr"]
        ds[1].weights[0] = 99.0  # decisions hold copies
        assert hp[1]["weights"][0] != 99.0

    def test_lr_optional(self):
        ds = PBTPolicy(interval=1).decide([0.0, 1.0], hyper(2, lr=None), 0)
        assert [d.lr for d in ds] == [None, None]

    @pytest.mark.parametrize(
        "fitness, hp, step, match",
        [
            ([], [], 0, "fitness must be a non-empty 1-D"),
            ([[0.1, 0.2]], hyper(2), 0, "fitness must be a non-empty 1-D"),
            ([0.1, 0.2], hyper(3), 0, "hyperparams must be a list of 2 dicts"),
            ([0.1, 0.2], {"weights": [1.0]}, 0, "hyperparams must be a list of 2 dicts"),
            ([0.1, 0.2], [{"lr": 0.1}, {"lr": 0.1}], 0, r"hyperparams\[0\] must be a dict"),
            ([0.1, 0.2], [{"weights": [0.5, 0.5]}, {"weights": [1.0]}], 0, r"hyperparams\[1\]"),
            ([0.1, 0.2], [{"weights": [0.5, -0.5]}] * 2, 0, "non-negative"),
            ([0.1, 0.2], [{"weights": [1.0], "lr": -1.0}] * 2, 0, r"\['lr'\] must be a positive"),
            ([0.1, 0.2], hyper(2), -1, "step must be a non-negative int"),
            ([0.1, 0.2], hyper(2), 1.0, "step must be a non-negative int"),
        ],
    )
    def test_rejects(self, fitness, hp, step, match):
        with pytest.raises(ValueError, match=match) as e:
            PBTPolicy(interval=1).decide(fitness, hp, step)
        assert "\n" not in str(e.value)

    def test_explore_lr_needs_lr(self):
        with pytest.raises(ValueError, match="must have an 'lr' when explore_lr"):
            PBTPolicy(interval=1, explore_lr=True).decide([0.0, 1.0], hyper(2, lr=None), 0)

    def test_weight_floor_must_fit_k(self):
        policy = PBTPolicy(interval=1, weight_floor=0.01)
        with pytest.raises(ValueError, match="weight_floor must be < 1/k"):
            policy.decide([0.0, 1.0], hyper(2, k=100), 0)


class TestDeterminism:
    @staticmethod
    def _key(ds):
        return [(d.member, d.source, d.weights.tolist(), d.lr, d.resampled) for d in ds]

    def test_same_seed_and_step_same_decisions(self):
        policy = PBTPolicy(interval=1, quantile=0.5, explore_lr=True, seed=11)
        f = np.random.default_rng(0).random(8)
        a = self._key(policy.decide(f, hyper(8), 3))
        assert a == self._key(policy.decide(f, hyper(8), 3))
        assert a == self._key(policy.decide(f, hyper(8), np.random.default_rng([11, 3])))

    def test_step_and_seed_change_decisions(self):
        policy = PBTPolicy(interval=1, quantile=0.5, explore_lr=True, seed=11)
        f = np.random.default_rng(0).random(8)
        a = self._key(policy.decide(f, hyper(8), 3))
        assert a != self._key(policy.decide(f, hyper(8), 4))
        other = dataclasses.replace(policy, seed=12)
        assert a != self._key(other.decide(f, hyper(8), 3))

    def test_resumed_run_replays_exactly(self):
        policy = PBTPolicy(interval=1, quantile=0.25, explore_lr=True, seed=3)

        def run(start_hp, steps):
            hp, log = start_hp, []
            for step in steps:
                f = np.array([h["weights"][0] for h in hp])  # a deterministic "fitness"
                ds = policy.decide(f, hp, step)
                log.append(self._key(ds))
                hp = [{"weights": d.weights, "lr": d.lr} for d in ds]
            return hp, log

        hp3, first = run(hyper(6), range(1, 4))
        _, rest = run(hp3, range(4, 7))  # "resume" at sync 4 from the saved hyperparameters
        _, full = run(hyper(6), range(1, 7))
        assert first + rest == full

    def test_generator_is_consumed_in_documented_order(self):
        # Re-derive the decisions of a sync from the documented draw order.
        policy = PBTPolicy(interval=1, quantile=0.5, explore_lr=True, seed=5)
        f = np.array([0.3, 0.1, 0.8, 0.5])
        hp = hyper(4)
        ds = policy.decide(f, hp, 2)
        rng = policy.generator(2)
        top, bottom = policy.partition(f, rng)  # the tie permutation
        for m in bottom:
            src = top[int(rng.integers(len(top)))]
            w, lr, res = policy.explore(hp[src]["weights"], hp[src]["lr"], rng)
            assert (ds[m].source, ds[m].weights.tolist(), ds[m].lr) == (src, w.tolist(), lr)

    def test_pure_logic_modules(self):
        root = Path(__file__).resolve().parents[1] / "src" / "scalarize" / "search"
        for name in ("pbt.py", "fitness.py", "pb2.py"):
            text = (root / name).read_text()
            assert "import torch" not in text and "open(" not in text


# --------------------------------------------------------------------------- lineage


def _hand_history() -> list[LineageRow]:
    """Three members; at t=5 member 2 copies 0 (weights a), at t=10 member 1 copies 2 (b)."""
    w0 = [(0.5, 0.5), (0.2, 0.8), (0.9, 0.1)]
    a, b = (0.6, 0.4), (0.7, 0.3)
    rows = [LineageRow(0, m, m, w0[m], 0.1 * (m + 1)) for m in range(3)]
    rows += [
        LineageRow(5, 0, 0, w0[0], 0.1),
        LineageRow(5, 1, 1, w0[1], 0.2),
        LineageRow(5, 2, 0, a, 0.15, ("lr",)),
        LineageRow(10, 0, 0, w0[0], 0.1),
        LineageRow(10, 1, 2, b, 0.15),
        LineageRow(10, 2, 2, a, 0.15),
    ]
    return rows


def _as_lists(schedule):
    return [(t, np.asarray(v).tolist()) for t, v in schedule]


class TestLineage:
    def test_schedule_through_two_exploits(self):
        h = _hand_history()
        assert _as_lists(schedule_of(1, h)) == [(0, [0.5, 0.5]), (5, [0.6, 0.4]), (10, [0.7, 0.3])]
        assert schedule_of(1, h, key="lr") == [(0, 0.1), (5, 0.15), (10, 0.15)]
        assert _as_lists(schedule_of(2, h)) == [(0, [0.5, 0.5]), (5, [0.6, 0.4]), (10, [0.6, 0.4])]
        assert _as_lists(schedule_of(0, h)) == [(0, [0.5, 0.5]), (5, [0.5, 0.5]), (10, [0.5, 0.5])]

    def test_changes_only_history(self):
        h = [r for r in _hand_history() if r.time == 0 or r.source != r.member]
        assert _as_lists(schedule_of(1, h)) == [(0, [0.5, 0.5]), (5, [0.6, 0.4]), (10, [0.7, 0.3])]
        assert _as_lists(schedule_of(0, h)) == [(0, [0.5, 0.5])]

    def test_dict_rows_and_order_do_not_matter(self):
        h = [r.as_dict() for r in reversed(_hand_history())]
        assert _as_lists(schedule_of(1, h)) == [(0, [0.5, 0.5]), (5, [0.6, 0.4]), (10, [0.7, 0.3])]

    def test_rows_are_plain(self):
        ds = PBTPolicy(interval=1).decide([0.2, 0.1, 0.9, 0.5], hyper(4), 1)
        rows = lineage_rows(ds, time=4)
        assert [(r.time, r.member, r.source) for r in rows] == [(4, d.member, d.source) for d in ds]
        assert all(isinstance(x, float) for r in rows for x in r.weights)
        json.dumps([r.as_dict() for r in rows])
        start = initial_rows(hyper(4))
        assert [(r.time, r.member, r.source) for r in start] == [(0, m, m) for m in range(4)]

    def test_rejects(self):
        h = _hand_history()
        with pytest.raises(ValueError, match="two rows for member 1 at time 5"):
            schedule_of(1, h + [LineageRow(5, 1, 1, (0.5, 0.5), None)])
        with pytest.raises(ValueError, match="member 7 has no row"):
            schedule_of(7, h)
        with pytest.raises(ValueError, match="key must be"):
            schedule_of(1, h, key="momentum")
        with pytest.raises(ValueError, match="history rows must be"):
            schedule_of(1, [{"time": 0, "member": 1}])

    def test_matches_a_simulated_run(self):
        """Track every model's true schedule while the policy runs; schedule_of must agree."""
        policy = PBTPolicy(interval=2, quantile=0.25, seed=9)
        n = 8
        hp = hyper(n, k=3)
        history = initial_rows(hp)
        true = {m: [(0, list(hp[m]["weights"]))] for m in range(n)}
        rng = np.random.default_rng(0)
        for step, t in enumerate(range(2, 21, 2), start=1):
            f = rng.random(n)
            f[rng.integers(n)] = np.nan if step % 3 == 0 else f[0]
            ds = policy.decide(f, hp, step)
            history += lineage_rows(ds, t)
            true = {d.member: true[d.source] + [(t, d.weights.tolist())] for d in ds}
            hp = [{"weights": d.weights, "lr": d.lr} for d in ds]
        for m in range(n):
            assert _as_lists(schedule_of(m, history)) == true[m]


# --------------------------------------------------------------------------- fitness

PRIMARY = [("left/accuracy", True), ("task0/mse", False)]
METRICS = {"left/accuracy": 0.9, "task0/mse": 0.2, "right/accuracy": 0.85}


class TestFitness:
    def test_mean_primary(self):
        assert mean_primary(PRIMARY)(METRICS) == pytest.approx((0.9 - 0.2) / 2)
        assert mean_primary([("task0/mse", False)])(METRICS) == pytest.approx(-0.2)

    def test_nan_gives_nan(self):
        bad = dict(METRICS, **{"task0/mse": math.nan})
        assert math.isnan(mean_primary(PRIMARY)(bad))
        assert math.isnan(delta_m_fitness(PRIMARY, [0.8, 0.25])(bad))
        assert math.isnan(constrained("left/accuracy", {"task0/mse": 0.3}, PRIMARY)(bad))

    def test_missing_metric(self):
        with pytest.raises(ValueError, match="metric 'task0/mse' is missing"):
            mean_primary(PRIMARY)({"left/accuracy": 0.9})

    def test_delta_m(self):
        # accuracy +12.5 %, mse (0.2 - 0.25) / 0.25 = -20 % of a lower-is-better metric: +20 %
        fn = delta_m_fitness(PRIMARY, {"left/accuracy": 0.8, "task0/mse": 0.25})
        assert fn(METRICS) == pytest.approx(16.25)
        assert delta_m_fitness(PRIMARY, [0.8, 0.25])(METRICS) == pytest.approx(16.25)

    @pytest.mark.parametrize(
        "stl, match",
        [
            ([0.8], "stl must have 2 values"),
            ({"left/accuracy": 0.8}, "no value for primary metric 'task0/mse'"),
            ([0.8, 0.0], "strictly positive"),
            ([0.8, math.nan], "finite"),
            (["a", 1.0], "stl must be numbers"),
        ],
    )
    def test_delta_m_rejects(self, stl, match):
        with pytest.raises(ValueError, match=match):
            delta_m_fitness(PRIMARY, stl)

    def test_constrained_by_hand(self):
        primary = PRIMARY + [("right/accuracy", True)]
        fn = constrained("left/accuracy", {"right/accuracy": 0.8, "task0/mse": 0.3}, primary)
        assert fn(METRICS) == 0.9  # all floors met
        low = dict(METRICS, **{"right/accuracy": 0.7})  # violation 0.1
        assert fn(low) == pytest.approx(0.9 - 1e6 * 1.1)
        both = dict(low, **{"task0/mse": 0.35})  # violation 0.1 + 0.05
        assert fn(both) == pytest.approx(0.9 - 1e6 * 1.15)
        worse_but_feasible = dict(METRICS, **{"left/accuracy": 0.1})
        assert fn(worse_but_feasible) > fn(dict(low, **{"right/accuracy": 0.7999}))
        assert fn(low) > fn(both)  # smaller violation ranks higher
        exactly = dict(METRICS, **{"right/accuracy": 0.8, "task0/mse": 0.3})
        assert fn(exactly) == 0.9  # the floor itself is met

    def test_constrained_lower_is_better_target(self):
        fn = constrained("task0/mse", {"left/accuracy": 0.95}, PRIMARY, penalty=10.0)
        assert fn(dict(METRICS, **{"left/accuracy": 0.96})) == pytest.approx(-0.2)
        assert fn(METRICS) == pytest.approx(-0.2 - 10.0 * 1.05)

    @pytest.mark.parametrize(
        "args, match",
        [
            (("right/accuracy", {"task0/mse": 0.3}), "target 'right/accuracy' is not a primary"),
            (("left/accuracy", {}), "floors must be a non-empty"),
            (("left/accuracy", {"right/accuracy": 0.8}), "direction is unknown"),
            (("left/accuracy", {"task0/mse": "x"}), "must be a finite number"),
        ],
    )
    def test_constrained_rejects(self, args, match):
        with pytest.raises(ValueError, match=match):
            constrained(*args, PRIMARY)
        with pytest.raises(ValueError, match="penalty must be"):
            constrained("left/accuracy", {"task0/mse": 0.3}, PRIMARY, penalty=0)

    @pytest.mark.parametrize(
        "primary, match",
        [
            ([], "at least one"),
            ("left/accuracy", "list of"),
            ([("a", "max")], "pairs"),
            ([("a", True), ("a", False)], "twice"),
        ],
    )
    def test_primary_rejects(self, primary, match):
        with pytest.raises(ValueError, match=match):
            mean_primary(primary)

    def test_build_fitness(self):
        assert build_fitness("mean_primary", PRIMARY)(METRICS) == pytest.approx(0.35)
        assert build_fitness({"name": "mean_primary"}, PRIMARY)(METRICS) == pytest.approx(0.35)
        assert build_fitness("delta_m", PRIMARY, stl=[0.8, 0.25])(METRICS) == pytest.approx(16.25)
        spec = {"name": "delta_m", "stl": {"left/accuracy": 0.8, "task0/mse": 0.25}}
        assert build_fitness(spec, PRIMARY)(METRICS) == pytest.approx(16.25)
        spec = {"name": "constrained", "target": "left/accuracy", "floors": {"task0/mse": 0.1}}
        assert build_fitness(spec, PRIMARY)(METRICS) == pytest.approx(0.9 - 1e6 * 1.1)
        spec["penalty"] = 2.0
        assert build_fitness(spec, PRIMARY)(METRICS) == pytest.approx(0.9 - 2.0 * 1.1)
        fn = build_fitness(lambda m: m["right/accuracy"] * 2, PRIMARY)
        assert fn(METRICS) == 1.7 and isinstance(fn(METRICS), float)
        assert set(FITNESS_NAMES) == {"mean_primary", "weighted", "delta_m", "constrained"}
        weighted = build_fitness({"name": "weighted", "preference": [3, 1]}, PRIMARY)
        signed = [(1 if up else -1) * METRICS[n] for n, up in PRIMARY]
        assert weighted(METRICS) == pytest.approx(0.75 * signed[0] + 0.25 * signed[1])
        with pytest.raises(ValueError, match="preference must be 2 non-negative"):
            build_fitness({"name": "weighted", "preference": [1, -1]}, PRIMARY)

    @pytest.mark.parametrize(
        "spec, match",
        [
            ("best", "unknown spec 'best'; allowed: 'mean_primary'"),
            ({"target": "x"}, "unknown spec None"),
            (3, "fitness must be"),
            ("delta_m", "needs single-task values"),
            ("constrained", "needs 'target'"),
            ({"name": "constrained", "target": "left/accuracy"}, "needs 'floors'"),
            ({"name": "mean_primary", "stl": [1.0]}, "unknown key 'stl'"),
        ],
    )
    def test_build_fitness_rejects(self, spec, match):
        with pytest.raises(ValueError, match=match) as e:
            build_fitness(spec, PRIMARY)
        assert "\n" not in str(e.value)

    def test_user_callable_must_return_a_number(self):
        with pytest.raises(ValueError, match="must return a number"):
            build_fitness(lambda m: "high", PRIMARY)(METRICS)

    def test_fitness_vector_feeds_decide(self):
        members = [dict(METRICS, **{"left/accuracy": a}) for a in (0.5, 0.9, math.nan, 0.7)]
        f = fitness_vector(build_fitness("mean_primary", PRIMARY), members)
        assert f.shape == (4,) and math.isnan(f[2])
        assert exploited(PBTPolicy(interval=1).decide(f, hyper(4), 0)) == [2]


# --------------------------------------------------------------------------- PB2


class TestPB2:
    @staticmethod
    def _data(n_syncs=6, n=5, k=3, seed=0):
        rng = np.random.default_rng(seed)
        times = np.repeat(np.arange(1, n_syncs + 1), n).astype(float)
        w = rng.dirichlet(np.ones(k), size=len(times))
        y = w[:, 0] - 0.5 * w[:, 1] + 0.05 * rng.standard_normal(len(times))
        return times, w, y

    def test_on_simplex_deterministic_and_informed(self):
        from scalarize.search import pb2_explore

        t, w, y = self._data()
        a = pb2_explore(t, w, y, now=7, count=3, rng=np.random.default_rng(1), pending=w[:2])
        b = pb2_explore(t, w, y, now=7, count=3, rng=np.random.default_rng(1), pending=w[:2])
        assert a.shape == (3, 3) and np.array_equal(a, b)
        np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
        assert a.min() > 0
        assert np.all(a[:, 0] > 1 / 3)  # improvement grows with w0: UCB goes there
        assert len(np.unique(a.round(12), axis=0)) == 3  # hallucination keeps picks apart

    def test_too_little_data_falls_back_to_dirichlet(self):
        from scalarize.search.pb2 import pb2_explore

        t, w, y = self._data(n_syncs=1, n=2)
        y[1] = math.nan  # diverged rows are dropped: one row left
        out = pb2_explore(t, w, y, now=2, count=2, rng=3)
        expected = np.random.default_rng(3).dirichlet(np.ones(3), size=2)
        np.testing.assert_allclose(out, expected / expected.sum(axis=1, keepdims=True))

    def test_rejects(self):
        from scalarize.search.pb2 import pb2_explore

        t, w, y = self._data()
        with pytest.raises(ValueError, match="need times"):
            pb2_explore(t[:-1], w, y, now=7, count=1, rng=0)
        with pytest.raises(ValueError, match="count must be"):
            pb2_explore(t, w, y, now=7, count=0, rng=0)

    def test_kernel_gradient(self):
        from scalarize.search.pb2 import TimeVaryingRBF

        rng = np.random.default_rng(0)
        x = np.column_stack([rng.integers(0, 6, 9), rng.dirichlet(np.ones(3), 9)])
        kern = TimeVaryingRBF(epsilon=0.2, length_scale=0.4)
        _, grad = kern(x, eval_gradient=True)
        for i in range(2):
            step = np.zeros(2)
            step[i] = 1e-6
            hi = kern.clone_with_theta(kern.theta + step)(x)
            lo = kern.clone_with_theta(kern.theta - step)(x)
            np.testing.assert_allclose((hi - lo) / 2e-6, grad[..., i], atol=1e-8)
        np.testing.assert_allclose(np.diag(kern(x)), kern.diag(x))
