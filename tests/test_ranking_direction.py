"""Every place that ranks runs or evaluations ranks by each primary metric's direction: an MSE
(lower is better) is not ranked like an accuracy, on a lower-is-better benchmark and on one that
mixes the two directions. The places: ``selection_score`` (``compare``'s learning rate per method),
the primary metrics a benchmark declares (which every ranking reads), PBT's fitness of the
members, the study report's best member per cell, and the record's reported evaluation (by the
run's weighted validation loss, whatever the metrics' directions)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scalarize.data import Benchmark, Split, Task, load_benchmark
from scalarize.experiments.compare import CompareRun, choose_learning_rates
from scalarize.population.pbt import scores
from scalarize.report.study import cell_rows
from scalarize.search.fitness import build_fitness
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunRecord, RunResult, selection_score

LOWER = [("task0/mse", False), ("task1/mse", False)]
MIXED = [("digit/accuracy", True), ("size/mse", False)]


def _mixed_benchmark() -> Benchmark:
    def split(n):
        return Split(torch.zeros(n, 3), {"digit": torch.zeros(n, dtype=torch.long), "size": torch.zeros(n, 1)})

    tasks = [Task("digit", "multiclass", 10), Task("size", "regression", 1)]
    return Benchmark("mixed", "mtl", tasks, {"all": {s: split(4) for s in ("train", "val", "test")}})


@pytest.fixture(scope="module")
def lower():
    return load_benchmark("synthetic_linear", train_size=20, val_size=10, test_size=10)


# -- what a benchmark declares ----------------------------------------------------------------


def test_benchmarks_declare_their_primary_metrics_directions(lower):
    assert primary_metrics(lower) == LOWER
    assert primary_metrics(_mixed_benchmark()) == MIXED
    assert primary_metrics(load_benchmark("multimnist", train_size=60, test_size=30)) == [
        ("left/accuracy", True),
        ("right/accuracy", True),
    ]


# -- selection_score: compare's learning rate ---------------------------------------------------


def test_selection_score_signs_each_metric_by_its_direction():
    assert selection_score({"task0/mse": 0.2, "task1/mse": 0.4}, LOWER) == pytest.approx(-0.3)
    assert selection_score({"digit/accuracy": 0.9, "size/mse": 0.5}, MIXED) == pytest.approx((0.9 - 0.5) / 2)
    # lower MSE scores higher; a higher accuracy scores higher
    assert selection_score({"task0/mse": 0.1, "task1/mse": 0.1}, LOWER) > selection_score(
        {"task0/mse": 0.2, "task1/mse": 0.1}, LOWER
    )
    low, high = {"digit/accuracy": 0.8, "size/mse": 0.1}, {"digit/accuracy": 0.8, "size/mse": 0.3}
    assert selection_score(low, MIXED) > selection_score(high, MIXED)
    assert selection_score({"digit/accuracy": 0.9, "size/mse": 0.3}, MIXED) > selection_score(high, MIXED)


def _runs_and_results(values: dict[float, list[dict[str, float]]]):
    runs, results = [], {}
    for lr, per_seed in values.items():
        for seed, val in enumerate(per_seed):
            name = f"lr{lr}-s{seed}"
            runs.append(CompareRun("m", lr, seed, SimpleNamespace(name=name)))
            results[name] = RunResult(
                name=name, status="completed", objectives=[], best_evaluation=0, best_step=0, val=val, test=val, steps=1
            )
    return runs, results


def test_compare_keeps_the_learning_rate_of_the_lowest_mse(lower):
    runs, results = _runs_and_results(
        {
            0.1: [{"task0/mse": 0.9, "task1/mse": 0.7}, {"task0/mse": 0.8, "task1/mse": 0.8}],
            0.01: [{"task0/mse": 0.2, "task1/mse": 0.3}, {"task0/mse": 0.3, "task1/mse": 0.2}],
            0.001: [{"task0/mse": 0.5, "task1/mse": 0.5}, {"task0/mse": 0.4, "task1/mse": 0.6}],
        }
    )
    means, chosen = choose_learning_rates(runs, results, lower)
    assert chosen == {"m": 0.01}
    assert means[("m", 0.01)] == pytest.approx(-0.25) and means[("m", 0.1)] == pytest.approx(-0.8)


def test_compare_with_mixed_directions_weighs_a_lower_mse_as_a_gain():
    runs, results = _runs_and_results(
        {
            # same accuracy; the second lr has the higher MSE, the third the higher accuracy and MSE
            0.1: [{"digit/accuracy": 0.6, "size/mse": 0.2}],
            0.01: [{"digit/accuracy": 0.6, "size/mse": 0.9}],
            0.001: [{"digit/accuracy": 0.7, "size/mse": 0.4}],
        }
    )
    means, chosen = choose_learning_rates(runs, results, _mixed_benchmark())
    assert chosen == {"m": 0.1}
    assert means[("m", 0.1)] == pytest.approx(0.2) and means[("m", 0.001)] == pytest.approx(0.15)


def test_compare_end_to_end_on_a_regression_benchmark_keeps_the_lowest_validation_mse(tmp_path, one_thread):
    from scalarize.experiments.compare import load_compare_config, run_compare

    config = tmp_path / "compare.yaml"
    config.write_text(
        "name: c\nbenchmark: {name: synthetic_linear, options: {train_size: 64, val_size: 32, test_size: 32}}\n"
        "model: {width: 0.25, depth: 1}\nsteps: 6\neval_every: 3\nbatch_size: 32\ndevice: cpu\nstl: false\n"
        "compare: {methods: [{name: scalarization}], seeds: [0], lr_grid: [0.0001, 0.03]}\n"
    )
    result = run_compare(load_compare_config(config, [f"output={tmp_path / 'out'}"]), progress=False)
    mse = {
        lr: np.mean([result.results[r.name].val[m] for r in result.runs if r.lr == lr for m, _ in LOWER])
        for lr in (0.0001, 0.03)
    }
    assert mse[0.0001] != mse[0.03]
    assert result.chosen_lr == {"uniform": min(mse, key=mse.get)}


# -- PBT: the members' fitness --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mean_primary", {"name": "weighted", "preference": [1.0, 3.0]}])
def test_pbt_fitness_ranks_a_lower_mse_higher(lower, name):
    fitness_fn = build_fitness(name, primary_metrics(lower))
    metrics = [
        {"task0/mse": 0.5, "task1/mse": 0.5},
        {"task0/mse": 0.1, "task1/mse": 0.2},
        {"task0/mse": 0.9, "task1/mse": 0.8},
    ]
    fitness, objectives = scores(fitness_fn, [n for n, _ in LOWER], metrics, [True, True, True])
    assert list(np.argsort(-fitness)) == [1, 0, 2]
    assert objectives.tolist() == [[0.5, 0.5], [0.1, 0.2], [0.9, 0.8]]  # raw, as measured


def test_pbt_fitness_with_mixed_directions():
    fitness_fn = build_fitness("mean_primary", primary_metrics(_mixed_benchmark()))
    metrics = [
        {"digit/accuracy": 0.6, "size/mse": 0.9},
        {"digit/accuracy": 0.6, "size/mse": 0.1},
        {"digit/accuracy": 0.9, "size/mse": 0.1},
    ]
    fitness, _ = scores(fitness_fn, [n for n, _ in MIXED], metrics, [True, True, True])
    assert list(np.argsort(-fitness)) == [2, 1, 0]
    assert fitness[1] == pytest.approx((0.6 - 0.1) / 2)


# -- the study report's best member of a cell -----------------------------------------------------


def _study(primary: dict[str, tuple[str, bool]], vals: dict[str, dict[str, float]]):
    results = {name: SimpleNamespace(status="completed", val=val, test=val) for name, val in vals.items()}
    members = [SimpleNamespace(name=name, weights=[0.5, 0.5]) for name in vals]
    group = tuple(primary)
    cell = SimpleNamespace(
        group=group, depth=1, width=1.0, seed=0, sweep=SimpleNamespace(results=results, members=members)
    )
    stl = {(o, 1, 1.0, 0): SimpleNamespace(test={m: 0.0}) for o, (m, _) in primary.items()}
    return SimpleNamespace(cells=[cell], primary=primary, stl=stl)


def test_the_study_report_s_best_member_has_the_lowest_mse():
    primary = {"task0": ("task0/mse", False), "task1": ("task1/mse", False)}
    result = _study(
        primary,
        {
            "a": {"task0/mse": 0.4, "task1/mse": 0.4},
            "b": {"task0/mse": 0.1, "task1/mse": 0.2},
            "c": {"task0/mse": 0.9, "task1/mse": 0.9},
        },
    )
    assert [row["best"] for row in cell_rows(result)] == ["b"]


def test_the_study_report_s_best_member_with_mixed_directions():
    primary = {"digit": ("digit/accuracy", True), "size": ("size/mse", False)}
    result = _study(
        primary,
        {
            "a": {"digit/accuracy": 0.9, "size/mse": 0.8},
            "b": {"digit/accuracy": 0.8, "size/mse": 0.1},
            "c": {"digit/accuracy": 0.7, "size/mse": 0.9},
        },
    )
    assert [row["best"] for row in cell_rows(result)] == ["b"]  # +0.35 against a's +0.05


# -- the record's reported evaluation -------------------------------------------------------------


@pytest.mark.parametrize("primary", [LOWER, [("task0/mse", False), ("task1/accuracy", True)]])
def test_the_record_reports_the_lowest_weighted_validation_loss_whatever_the_directions(primary):
    record = RunRecord("r", ["task0", "task1"], primary)
    metric = [name for name, _ in primary]
    losses = [(0.8, 0.8), (0.3, 0.5), (0.6, 0.2), (0.9, 0.1)]
    for step, (a, b) in enumerate(losses, start=1):
        val = {"task0/loss": a, "task1/loss": b, metric[0]: a, metric[1]: b}
        record.evaluated(step, [a, b], val, {"step": float(step)}, torch.tensor([0.75, 0.25]))
    # weighted losses: 0.8, 0.35, 0.5, 0.7 -> the second evaluation
    assert record.best["evaluation"] == 1 and record.best["step"] == 2
    assert record.best["score"] == pytest.approx(-0.35) and not math.isinf(record.best["score"])
