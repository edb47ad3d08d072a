"""The Ray backend on a local Ray (2 CPUs): the same search and store as the local engine."""

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray at a time under `pytest -n`

from scalarize.experiments.pbt import PBTConfig, run_pbt  # noqa: E402
from scalarize.experiments.sweep import SweepConfig, run_sweep  # noqa: E402
from scalarize.store import Store  # noqa: E402

SMALL = {"name": "multimnist", "options": {"train_size": 400, "test_size": 100}}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_pbt_on_ray_with_a_population_of_4(tmp_path):
    config = PBTConfig(
        name="rp",
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=3,
        batch_size=50,
        output=str(tmp_path),
        pbt={"population": 4, "interval": 1, "backend": "ray", "compare_uniform": False},
    )
    result = run_pbt(config, progress=False)
    with Store(tmp_path) as store:
        statuses = {r["name"]: r["status"] for r in store.runs()}
        lineage = store.lineage("rp")
        history = store.history("rp-m00", "val")
    assert statuses == {f"rp-m0{i}": "completed" for i in range(4)}
    assert sum(r["time"] == 0 for r in lineage) == 4
    assert any(r["member"] != r["source"] for r in lineage)  # at least one exploit
    for row in lineage:
        assert sum(row["weights"]) == pytest.approx(1.0)
    assert len(history["left/accuracy"]) == 3
    assert result.members[result.best].name in statuses and result.schedule[0][0] == 0
    assert (tmp_path / "pbt_result.json").is_file()


@pytest.mark.slow
def test_sweep_on_ray_fills_the_same_store(tmp_path):
    config = SweepConfig(
        name="rs",
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=1,
        batch_size=50,
        stl=False,
        output=str(tmp_path),
        sweep={"step": 0.5, "backend": "ray"},
    )
    result = run_sweep(config, progress=False)
    assert [r.status for r in result.results.values()] == ["completed"] * 3
    with Store(tmp_path) as store:
        assert all(store.final(m.name)["test"] for m in result.members)


@pytest.mark.slow
def test_mo_pbt_on_ray_with_a_population_of_4_gives_a_front(tmp_path):
    import json

    import numpy as np

    from scalarize.pareto import pareto_front

    options = {"num_tasks": 2, "relatedness": 0.0, "train_size": 400, "val_size": 200, "test_size": 200}
    config = PBTConfig(
        name="rmo",
        benchmark={"name": "synthetic_linear", "options": options},
        model={"family": "linear", "depth": 0},
        optimizer={"lr": 0.05},
        epochs=4,
        batch_size=100,
        stl=False,
        output=str(tmp_path),
        pbt={
            "population": 4,
            "interval": 1,
            "backend": "ray",
            "algorithm": "mo-pbt",
            "diversity": "crowding",
            "compare_uniform": False,
        },
    )
    result = run_pbt(config, progress=False)
    with Store(tmp_path) as store:
        statuses = {r["name"]: r["status"] for r in store.runs()}
        lineage = store.lineage("rmo")
    assert statuses == {f"rmo-m0{i}": "completed" for i in range(4)}
    assert any(r["member"] != r["source"] for r in lineage)  # the policy's exploits happened
    saved = json.loads((tmp_path / "pbt_result.json").read_text())
    names = ["task0/mse", "task1/mse"]
    objectives = np.array([[result.results[m.name].val[n] for n in names] for m in result.members])
    expected = sorted(result.members[i].name for i in pareto_front(objectives, [False, False]))
    assert sorted(e["name"] for e in saved["front"]) == expected
    for entry in saved["front"]:
        assert (tmp_path / entry["model"]).is_file() and entry["schedule"][0][0] == 0
    _check_the_policy_decided(config, result, lineage, tmp_path)


def _check_the_policy_decided(config, result, lineage, directory):
    """At each sync t (4 steps an evaluation), every copy in the lineage is the one the policy
    decides from the members' validation objectives at t and their weights until then."""
    import numpy as np

    policy = config.policy(result.primary)
    names = [n for n, _ in result.primary]
    members = [m.name for m in result.members]
    with Store(directory) as store:
        history = {m: store.history(m, "val") for m in members}
    for t in sorted({r["time"] for r in lineage if r["time"] > 0}):
        objectives = np.array([[dict(history[m][n])[4 * t] for n in names] for m in members])
        weights = [[r for r in lineage if r["member"] == m and r["time"] < t][-1]["weights"] for m in members]
        decisions = policy.decide(objectives, [{"weights": w, "lr": 0.05} for w in weights], step=t)
        expected = {(members[d.member], members[d.source]): d.weights for d in decisions if d.exploited}
        copies = {(r["member"], r["source"]): r["weights"] for r in lineage if r["time"] == t}
        assert set(copies) == set(expected)
        for key, w in copies.items():
            assert w == pytest.approx(expected[key].tolist(), abs=1e-6)


@pytest.mark.slow
def test_adaptive_sweep_on_ray_trains_each_batch_as_a_grid(tmp_path):
    config = SweepConfig(
        name="ra",
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=1,
        batch_size=50,
        stl=False,
        output=str(tmp_path),
        sweep={"design": "adaptive", "backend": "ray", "adaptive": {"initial": 3, "batch": 1, "batches": 1}},
    )
    result = run_sweep(config, progress=False)
    assert [r.status for r in result.results.values()] == ["completed"] * 4
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if p.is_dir()) == ["batch-00", "batch-01"]
    again = run_sweep(config, progress=False)  # read from the store: the same design, nothing trained
    assert [m.weights for m in again.members] == [m.weights for m in result.members]
