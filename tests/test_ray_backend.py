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
        name="rp", benchmark=SMALL, model={"width": 0.25}, epochs=3, batch_size=50, output=str(tmp_path),
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
        name="rs", benchmark=SMALL, model={"width": 0.25}, epochs=1, batch_size=50, stl=False,
        output=str(tmp_path), sweep={"step": 0.5, "backend": "ray"},
    )
    result = run_sweep(config, progress=False)
    assert [r.status for r in result.results.values()] == ["completed"] * 3
    with Store(tmp_path) as store:
        assert all(store.final(m.name)["test"] for m in result.members)


@pytest.mark.slow
def test_adaptive_sweep_on_ray_trains_each_batch_as_a_grid(tmp_path):
    config = SweepConfig(
        name="ra", benchmark=SMALL, model={"width": 0.25}, epochs=1, batch_size=50, stl=False,
        output=str(tmp_path), sweep={"design": "adaptive", "backend": "ray",
                                     "adaptive": {"initial": 3, "batch": 1, "batches": 1}},
    )
    result = run_sweep(config, progress=False)
    assert [r.status for r in result.results.values()] == ["completed"] * 4
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if p.is_dir()) == ["batch-00", "batch-01"]
    again = run_sweep(config, progress=False)  # read from the store: the same design, nothing trained
    assert [m.weights for m in again.members] == [m.weights for m in result.members]
