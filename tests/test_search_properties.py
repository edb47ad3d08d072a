"""Properties of scalarize.search (Hypothesis): PBT and MO-PBT invariants, directions of the
fitness functions, adaptive designs on the simplex."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scalarize.pareto import dominates
from scalarize.search import (
    MOPBTPolicy,
    PBTPolicy,
    adaptive_weights,
    build_fitness,
    front_members,
    quantile_count,
)

FAST = settings(max_examples=30, deadline=None)

grid_value = st.integers(0, 6).map(lambda v: v / 6)  # coarse: ties are common


def simplex_rows(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n)


def hyper(n: int, k: int, seed: int) -> list[dict]:
    w = simplex_rows(n, k, seed)
    return [{"weights": w[m], "lr": 0.01 * (m + 1)} for m in range(n)]


def on_simplex(w: np.ndarray) -> bool:
    return bool(np.all(w >= 0) and np.isclose(w.sum(), 1.0))


policies = st.builds(
    PBTPolicy,
    interval=st.just(1),
    quantile=st.sampled_from([0.1, 0.2, 0.25, 0.4, 0.5]),
    resample_probability=st.sampled_from([0.0, 0.25, 1.0]),
    explore_lr=st.booleans(),
    seed=st.integers(0, 1000),
)


@st.composite
def populations(draw, min_members: int = 2):
    n = draw(st.integers(min_members, 12))
    fitness = draw(hnp.arrays(np.float64, n, elements=grid_value))
    return fitness, draw(st.integers(2, 4)), draw(st.integers(0, 50))


# ------------------------------------------------------------------------------- PBT


@FAST
@given(policies, populations())
def test_pbt_bottom_quantile_copies_the_top_quantile(policy, population):
    fitness, k, step = population
    n = len(fitness)
    decisions = policy.decide(fitness, hyper(n, k, step), step)
    moved = [d for d in decisions if d.exploited]
    num = quantile_count(n, policy.quantile)
    assert len(moved) == num
    kth_best, kth_worst = np.sort(fitness)[::-1][num - 1], np.sort(fitness)[num - 1]
    for d in moved:
        assert fitness[d.member] <= kth_worst  # among the num worst (ties allowed)
        assert fitness[d.source] >= kth_best  # among the num best
        assert d.source not in {m.member for m in moved}
        assert on_simplex(d.weights)
        lo, hi = policy.lr_bounds
        assert d.lr is not None and (not policy.explore_lr or lo <= d.lr <= hi)


@FAST
@given(policies, populations(), st.data())
def test_pbt_diverged_members_are_always_replaced(policy, population, data):
    fitness, k, step = population
    n = len(fitness)
    bad = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1))
    fitness = fitness.copy()
    fitness[list(bad)] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    decisions = policy.decide(fitness, hyper(n, k, step), step)
    for d in decisions:
        assert d.exploited or d.member not in bad  # every diverged member is replaced
        assert d.source not in bad  # and none is copied


@FAST
@given(policies, populations())
def test_pbt_same_seed_same_decisions(policy, population):
    fitness, k, step = population
    n = len(fitness)
    a = policy.decide(fitness, hyper(n, k, 0), step)
    b = PBTPolicy(**{f: getattr(policy, f) for f in policy.__dataclass_fields__}).decide(
        fitness.copy(), hyper(n, k, 0), step
    )
    assert [(d.source, d.weights.tolist(), d.lr, d.resampled) for d in a] == [
        (d.source, d.weights.tolist(), d.lr, d.resampled) for d in b
    ]


@FAST
@given(populations(), st.integers(0, 1000))
def test_pbt_keeps_unexploited_hyperparameters(population, seed):
    fitness, k, step = population
    hp = hyper(len(fitness), k, step)
    for d in PBTPolicy(interval=1, seed=seed).decide(fitness, hp, step):
        if not d.exploited:
            assert d.weights.tolist() == hp[d.member]["weights"].tolist()
            assert d.lr == hp[d.member]["lr"]


# ------------------------------------------------------------------------------- MO-PBT


@st.composite
def objective_matrices(draw):
    n = draw(st.integers(2, 10))
    k = draw(st.integers(1, 3))
    values = draw(hnp.arrays(np.float64, (n, k), elements=grid_value))
    maximize = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    return values, maximize


@FAST
@given(objective_matrices(), st.integers(0, 50), st.booleans())
def test_mopbt_never_replaces_a_member_by_one_it_dominates(case, step, normalize):
    values, maximize = case
    n = len(values)
    policy = MOPBTPolicy(interval=1, maximize=tuple(maximize), normalize=normalize, seed=step)
    decisions = policy.decide(values, hyper(n, 2, step), step)
    moved = [d for d in decisions if d.exploited]
    assert len(moved) == quantile_count(n, policy.quantile)
    sources = {d.source for d in moved}
    for d in moved:
        assert on_simplex(d.weights)
        for kept in range(n):
            if kept not in {m.member for m in moved}:
                assert not dominates(values[d.member], values[kept], maximize)
        assert d.source not in {m.member for m in moved}
    front = set(front_members(values, maximize).tolist())
    if len(front) <= n - len(moved):
        assert not front & {d.member for d in moved}  # a small enough front survives whole
    assert sources <= set(range(n))


@FAST
@given(objective_matrices(), st.integers(0, 50))
def test_mopbt_directions_equal_negated_columns(case, step):
    values, maximize = case
    n = len(values)
    oriented = np.where(maximize, values, -values)
    a = MOPBTPolicy(interval=1, maximize=tuple(maximize)).decide(values, hyper(n, 2, 0), step)
    b = MOPBTPolicy(interval=1).decide(oriented, hyper(n, 2, 0), step)
    assert [(d.source, d.weights.tolist()) for d in a] == [(d.source, d.weights.tolist()) for d in b]


@FAST
@given(objective_matrices(), st.integers(0, 50))
def test_mopbt_same_seed_same_decisions(case, step):
    values, maximize = case
    n = len(values)
    policy = MOPBTPolicy(interval=1, maximize=tuple(maximize), seed=3)
    a = policy.decide(values, hyper(n, 3, 1), step)
    b = MOPBTPolicy(interval=1, maximize=tuple(maximize), seed=3).decide(values, hyper(n, 3, 1), step)
    assert [(d.source, d.weights.tolist()) for d in a] == [(d.source, d.weights.tolist()) for d in b]


# ------------------------------------------------------------------------------- fitness


primary_cases = st.lists(st.booleans(), min_size=1, max_size=4)


@FAST
@given(primary_cases, st.data())
def test_fitness_follows_each_metric_direction(directions, data):
    """Improving one metric in its own direction never lowers a fitness; for an MSE that means
    lowering it."""
    names = [f"t{i}/{'acc' if hi else 'mse'}" for i, hi in enumerate(directions)]
    primary = list(zip(names, directions))
    metrics = {n: data.draw(st.floats(0.2, 0.8)) for n in names}
    j = data.draw(st.integers(0, len(names) - 1))
    better = dict(metrics)
    better[names[j]] += 0.1 if directions[j] else -0.1
    specs = [
        "mean_primary",
        {"name": "weighted", "preference": [1.0] * len(names)},
        {"name": "delta_m", "stl": [0.5] * len(names)},
        {"name": "constrained", "target": names[j], "floors": {names[j]: 0.5}},
    ]
    for spec in specs:
        fn = build_fitness(spec, primary)
        assert fn(better) > fn(metrics), spec


# ------------------------------------------------------------------------------- adaptive


@st.composite
def sweeps(draw):
    k = draw(st.integers(2, 4))
    n = draw(st.integers(1, 8))
    weights = simplex_rows(n, k, draw(st.integers(0, 1000)))
    objectives = draw(st.integers(2, 3))
    values = draw(hnp.arrays(np.float64, (n, objectives), elements=grid_value))
    maximize = draw(st.lists(st.booleans(), min_size=objectives, max_size=objectives))
    return weights, values, maximize, draw(st.integers(1, 6))


@FAST
@given(sweeps())
def test_adaptive_weights_are_new_points_of_the_simplex(case):
    weights, values, maximize, batch = case
    out = adaptive_weights(weights, values, maximize, batch)
    assert out.shape == (batch, weights.shape[1])
    assert np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0)
    seen = np.vstack([weights, out])
    gaps = np.abs(seen[:, None, :] - seen[None, :, :]).max(axis=2)
    np.fill_diagonal(gaps, np.inf)
    assert gaps.min() > 1e-9  # nothing repeats a trained or another proposed vector
    assert np.array_equal(out, adaptive_weights(weights, values, maximize, batch))
