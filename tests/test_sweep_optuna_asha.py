"""Issue 27 items 1–2: Optuna as a sweep design, early stopping of weak members (successive halving)."""

import json
import math
import sqlite3

import numpy as np
import pytest
import torch

from scalarize.cli.main import main
from scalarize.experiments.sweep import SweepConfig, load_sweep_config, run_sweep
from scalarize.population.members import Member
from scalarize.population.stacked import StackedPopulation
from scalarize.search.successive_halving import EarlyStopping, rung_evaluations, survivors
from scalarize.train.config import ConfigError, build_config
from scalarize.train.setup import benchmark_from_config

optuna = pytest.importorskip("optuna")
from scalarize.search.optuna_design import OptunaDesign, simplex_weights  # noqa: E402

TINY = {
    "name": "op",
    "benchmark": {"name": "synthetic", "options": {"num_tasks": 3, "train_size": 256, "val_size": 64, "test_size": 64}},
    "model": {"family": "mlp", "width": 0.25, "depth": 1},
    "method": {"name": "scalarization"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "epochs": 9,
    "batch_size": 64,
    "stl": False,
    "device": "cpu",
}


# -- successive halving, by hand -------------------------------------------------------------------
def test_rungs_are_min_resource_times_powers_of_eta_below_the_last_evaluation():
    assert rung_evaluations(EarlyStopping(1, 3), 9) == [1, 3]
    assert rung_evaluations(EarlyStopping(1, 3), 10) == [1, 3, 9]
    assert rung_evaluations(EarlyStopping(2, 2), 20) == [2, 4, 8, 16]
    assert rung_evaluations(EarlyStopping(rungs=(2, 5, 30)), 10) == [2, 5]


def test_nine_members_with_eta_three_keep_three_then_one():
    # fake fitness: member i scores i at rung 0; at rung 1 the three left score 5 < 3 < 8's order
    rung0 = {f"m{i}": float(i) for i in range(9)}
    assert survivors(rung0, list(rung0), 3) == ["m6", "m7", "m8"]
    rung1 = {"m6": 2.0, "m7": 9.0, "m8": 1.0}
    assert survivors(rung1, list(rung1), 3) == ["m7"]


def test_a_nan_is_the_worst_and_ties_go_to_the_lower_name():
    assert survivors({"a": math.nan, "b": 0.0, "c": 0.0, "d": -1.0}, ["a", "b", "c", "d"], 2) == ["b", "c"]
    assert survivors({"a": 1.0, "b": 1.0, "c": 0.0}, ["a", "b", "c"], 3) == ["a"]


def test_asha_compares_a_later_chunk_with_the_members_recorded_before_it():
    # rung 0 of a first chunk recorded 0..5; a second chunk arrives with 2.5 and 7: 8 recorded,
    # the top 2 (7 and 5) go on, so 2.5 stops and 7 goes on; at least one goes on always
    recorded = {f"m{i}": float(i) for i in range(6)} | {"x": 2.5, "y": 7.0}
    assert survivors(recorded, ["x", "y"], 3) == ["y"]
    assert survivors({"a": 5.0, "z": 0.0}, ["z"], 3) == []


# -- the shrink -------------------------------------------------------------------------------------
WEIGHTS = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]]


def _members(indices):
    out = []
    for i in indices:
        data = {
            **TINY,
            "epochs": 4,
            "batch_size": 32,
            "seed": i,
            "method": {"name": "scalarization", "weights": WEIGHTS[i]},
        }
        out.append(Member(f"s-{i:03d}", build_config(data)))
    return out


def test_a_shrunk_population_equals_a_population_of_those_members_alone(one_thread):
    benchmark = benchmark_from_config(build_config(TINY).benchmark)
    shrunk = StackedPopulation(_members(range(5)), benchmark, progress=False)
    shrunk.run_until(2 * shrunk.steps_per_epoch)
    shrunk.keep_members([1, 3, 4])
    shrunk.run_until(shrunk.total_steps)
    alone = StackedPopulation(_members([1, 3, 4]), benchmark, progress=False)
    alone.run_until(alone.total_steps)
    assert shrunk.size == 3 and [m.name for m in shrunk.members] == ["s-001", "s-003", "s-004"]
    for key in alone.params:
        assert torch.equal(shrunk.params[key], alone.params[key])
    state, other = shrunk.optimizer.state_dict()["state"], alone.optimizer.state_dict()["state"]
    assert all(torch.equal(state[k]["exp_avg_sq"], other[k]["exp_avg_sq"]) for k in other)
    assert [r.history for r in shrunk.records] == [r.history for r in alone.records]
    for a, b in zip(shrunk.samplers, alone.samplers):
        assert torch.equal(a.next_index(), b.next_index())  # the same next batch
    assert torch.equal(shrunk.weights, alone.weights)


def test_keep_members_refuses_bad_indices(one_thread):
    population = StackedPopulation(
        _members(range(3)), benchmark_from_config(build_config(TINY).benchmark), progress=False
    )
    for bad in ([], [2, 1], [0, 3], [1, 1]):
        with pytest.raises(ValueError, match="keep_members"):
            population.keep_members(bad)


# -- Optuna ------------------------------------------------------------------------------------------
def test_simplex_weights_are_uniform_on_the_simplex():
    u = np.random.default_rng(0).random((20000, 2))
    w = np.array([simplex_weights(row) for row in u])
    assert np.allclose(w.sum(1), 1) and (w >= 0).all()
    assert np.allclose(w.mean(0), 1 / 3, atol=0.01)  # Dirichlet(1): each weight's mean 1/3 ...
    assert np.mean(w[:, 0] > 0.5) == pytest.approx(0.25, abs=0.01)  # ... and P(w0 > 1/2) = (1/2)^2


def _design(tmp_path, sampler="tpe", seed=0, name="s"):
    return OptunaDesign(name, f"sqlite:///{tmp_path / 'optuna.db'}", sampler, seed, ["minimize"] * 3, 3)


@pytest.mark.parametrize("sampler", ["tpe", "gp", "nsga2", "nsga3", "random"])
def test_same_seed_same_weights(tmp_path, sampler):
    runs = []
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
        design = _design(tmp_path / directory, sampler)
        weights = []
        for first in (0, 4, 8):  # three batches of 4, told a fake front: beyond TPE/GP's start-up
            batch = design.weights(first, 4)
            for number, w in batch:
                design.tell(number, [float(w[0] ** 2), float(w[1]), float(1 - w[2])])
            weights += [w for _, w in batch]
        runs.append(np.array(weights))
    assert np.array_equal(runs[0], runs[1])
    other = _design(tmp_path / "a", sampler, seed=1, name="other").weights(0, 4)
    assert not np.array_equal(np.array([w for _, w in other]), runs[0][:4])


def test_asked_but_not_told_trials_are_reused(tmp_path):
    design = _design(tmp_path)
    first = design.weights(0, 3)  # asked, then "killed" before telling
    again = _design(tmp_path).weights(0, 3)
    assert [n for n, _ in again] == [0, 1, 2] and all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    assert len(design.study.get_trials()) == 3
    assert {t.state.name for t in design.study.get_trials()} == {"RUNNING"}


def cfg(tmp_path, **sweep):
    return SweepConfig.model_validate({**TINY, "output": str(tmp_path), "sweep": sweep})


def test_a_killed_optuna_sweep_resumes_with_the_same_trials(tmp_path, interrupt_at_checkpoint, one_thread):
    sweep = {"design": "optuna", "optuna": {"sampler": "tpe", "trials": 6, "batch": 3}}
    TINY_SHORT = {"epochs": 3}
    reference = run_sweep(cfg(tmp_path / "a", **sweep).model_copy(update=TINY_SHORT), progress=False)
    interrupt_at_checkpoint(StackedPopulation, 5)  # batch 0 done (3 checkpoints), batch 1 mid-way
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg(tmp_path / "b", **sweep).model_copy(update=TINY_SHORT), progress=False)
    with sqlite3.connect(tmp_path / "b" / "optuna.db") as db:
        states = [s for (s,) in db.execute("SELECT state FROM trials ORDER BY number")]
    assert states == ["COMPLETE"] * 3 + ["RUNNING"] * 3
    rerun = run_sweep(cfg(tmp_path / "b", **sweep).model_copy(update=TINY_SHORT), progress=False)
    assert [m.weights for m in rerun.members] == [m.weights for m in reference.members]
    assert {n: r.val for n, r in rerun.results.items()} == {n: r.val for n, r in reference.results.items()}
    assert (
        len(rerun.members) == 6
        and len(optuna.load_study(study_name="op", storage=(f"sqlite:///{tmp_path / 'b' / 'optuna.db'}")).trials) == 6
    )


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"design": "optuna", "factors": {"optimizer.lr": [0.1, 0.01]}}, "sweep.factors: design: optuna searches"),
        ({"design": "lattice", "early_stopping": {}, "engine": "loop"}, "sweep.early_stopping: trains stacked"),
        ({"design": "optuna", "fitness": "nope"}, "sweep.fitness: fitness: unknown spec"),
    ],
)
def test_combinations_refused_in_one_line(tmp_path, sweep, message):
    with pytest.raises(ConfigError) as error:
        run_sweep(cfg(tmp_path, **sweep), progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "sweep.optuna.sampler=cmaes",
            "sweep.optuna.sampler: Input should be 'tpe', 'gp', 'nsga2', 'nsga3' or 'random'",
        ),
        ("sweep.design=lattice", "sweep.optuna: read only by design: optuna"),
        ("sweep.early_stopping.reduction_factor=1", "sweep.early_stopping.reduction_factor: Input should be greater"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, override, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps({**TINY, "sweep": {"design": "optuna", "optuna": {"trials": 3}, "early_stopping": {}}}))
    with pytest.raises(ConfigError) as error:
        load_sweep_config(path, [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_optuna_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna":
            raise ImportError("No module named 'optuna'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ConfigError, match=r"pip install 'scalarize\[optuna\]'"):
        run_sweep(cfg(tmp_path, design="optuna"), progress=False)


# -- end to end ------------------------------------------------------------------------------------
def test_scalarize_sweep_optuna_with_early_stopping_on_synthetic(tmp_path, capsys, one_thread):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        json.dumps(
            {
                **TINY,
                "sweep": {
                    "design": "optuna",
                    "optuna": {"trials": 9, "batch": 9},
                    "early_stopping": {"reduction_factor": 3},
                },
            }
        )
    )
    assert main(["sweep", str(path), "-q", f"output={tmp_path / 'out'}"]) == 0
    out = capsys.readouterr().out
    assert "rung 0 (evaluation 1): 6 of 9 member(s) stop" in out and "rung 1 (evaluation 3): 2 of 3" in out
    with sqlite3.connect(tmp_path / "out" / "scalarize.db") as db:
        rows = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        steps = sorted(s for (s,) in db.execute("SELECT step FROM runs"))
    assert rows == {"stopped": 8, "completed": 1}
    assert steps == [4] * 6 + [12] * 2 + [36]  # 4 steps an epoch: rungs after epochs 1 and 3
    report = (tmp_path / "out" / "report.md").read_text()
    assert "240 of 324 member-steps (74%) not trained" in report
    with sqlite3.connect(tmp_path / "out" / "optuna.db") as db:
        states = sorted(s for (s,) in db.execute("SELECT state FROM trials"))
    assert states == ["COMPLETE"] + ["PRUNED"] * 8
    assert main(["sweep", str(path), "-q", f"output={tmp_path / 'out'}"]) == 0  # a rerun retrains nothing
    assert "successive halving" not in capsys.readouterr().out


def test_early_stopping_on_a_lattice_sweep_stops_the_same_members_after_a_kill(
    tmp_path, interrupt_at_checkpoint, one_thread
):
    sweep = {"design": "lattice", "step": 0.5, "early_stopping": {"reduction_factor": 2}}  # 6 + uniform
    reference = run_sweep(cfg(tmp_path / "a", **sweep), progress=False)
    interrupt_at_checkpoint(StackedPopulation, 2)  # after rung 0's checkpoint (its shrink saved)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg(tmp_path / "b", **sweep), progress=False)
    rerun = run_sweep(cfg(tmp_path / "b", **sweep), progress=False)
    status = {n: (r.status, r.steps, r.val) for n, r in rerun.results.items()}
    assert status == {n: (r.status, r.steps, r.val) for n, r in reference.results.items()}
    assert [r.status for r in reference.results.values()].count("stopped") == 6
    assert reference.saved_steps == (7 * 36, 4 * 32 + 2 * 28)  # rungs after 1 and 2 epochs: 4 of 7, then 2 of 3 stop
