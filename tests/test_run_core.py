"""One run core for every engine: a member trained alone, in a stacked population and as a Ray
trial writes the same record (best-validation metrics, history, costs)."""

import sqlite3

import pytest

from scalarize.population.engine import train_members
from scalarize.population.pbt import PBTSearch
from scalarize.search.pbt import PBTPolicy
from scalarize.store import Store
from scalarize.train import RunSpec, TrainConfig, train_run

SMALL = {"name": "multimnist", "options": {"train_size": 400, "test_size": 100}}
COST_KEYS = {"skipped_steps", "steps", "seconds_per_step", "step_memory_bytes"}


def _members(kind="member"):
    base = TrainConfig(
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=2,
        batch_size=50,
        stl=False,
        device="cpu",
        schedule={"name": "cosine"},
        optimizer={"lr": 0.003},
        eval_every=4,
    )
    return [
        RunSpec(
            f"m{i}",
            base.model_copy(update={"method": base.method.model_copy(update={"weights": list(w)}), "seed": i}),
            kind,
        )
        for i, w in enumerate(((0.3, 0.7), (0.8, 0.2)))
    ]


def _record(directory, run):
    with sqlite3.connect(directory / "scalarize.db") as db:
        final = dict(
            ((s, n), v) for s, n, v in db.execute("SELECT split, name, value FROM final WHERE run = ?", (run,))
        )
        history = dict(
            ((e, s, n), v)
            for e, s, n, v in db.execute(
                "SELECT evaluation, split, name, value FROM metrics WHERE run = ? AND split != 'train'", (run,)
            )
        )
        costs = dict(db.execute("SELECT name, value FROM costs WHERE run = ?", (run,)).fetchall())
        status = db.execute("SELECT status, step FROM runs WHERE name = ?", (run,)).fetchone()
    return final, history, costs, status


def _assert_same(a, b):
    for left, right in zip(a[:2], b[:2]):
        assert left.keys() == right.keys()
        for key, value in left.items():
            assert right[key] == pytest.approx(value, abs=1e-5, rel=1e-5), key
    assert a[2].keys() == b[2].keys() == COST_KEYS
    assert (a[2]["skipped_steps"], a[2]["steps"]) == (b[2]["skipped_steps"], b[2]["steps"])
    assert a[3] == b[3]


def _alone_and_stacked(tmp_path):
    with Store(tmp_path / "alone") as store:
        for member in _members():
            train_run(member, store, progress=False)
    with Store(tmp_path / "stacked") as store:
        train_members(_members(), store, engine="vectorized", progress=False)


def test_a_member_alone_and_stacked_writes_the_same_record(tmp_path):
    _alone_and_stacked(tmp_path)
    for member in _members():
        _assert_same(_record(tmp_path / "alone", member.name), _record(tmp_path / "stacked", member.name))


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_member_as_a_ray_trial_writes_the_same_record(tmp_path):
    pytest.importorskip("ray")
    from scalarize.backends.ray import RayBackend

    _alone_and_stacked(tmp_path)
    members = _members("pbt")
    search = PBTSearch("s", members, PBTPolicy(interval=10_000))  # no sync: every trial is a plain run
    with Store(tmp_path / "ray") as store:
        RayBackend().pbt(search, store, progress=False)
    for member in members:
        ray = _record(tmp_path / "ray", member.name)
        _assert_same(_record(tmp_path / "alone", member.name), ray)
        _assert_same(_record(tmp_path / "stacked", member.name), ray)
