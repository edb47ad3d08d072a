"""Ray PBT interrupted and rerun: a late kill finishes, and the search's decisions are the seed's.

Issue 24, items 3 and 4: a driver killed after every member's last evaluation (before the table)
must finish on a rerun, and the Ray search must be a pure function of the seed and the recorded
results: two runs, and a killed-and-resumed one, store the same lineage and weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray at a time under `pytest -n`

from ray.tune import Callback  # noqa: E402

import scalarize.backends.ray as ray_backend  # noqa: E402
from scalarize.cli.experiments import pbt_and_report  # noqa: E402
from scalarize.experiments.pbt import PBTConfig, run_pbt  # noqa: E402
from scalarize.store import Store  # noqa: E402

TINY = {
    "name": "synthetic",
    "options": {"num_tasks": 2, "input_dim": 8, "output_dim": 2, "train_size": 400, "val_size": 100, "test_size": 100},
}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _config(output: Path, name: str = "rk", epochs: int = 3) -> PBTConfig:
    return PBTConfig(
        name=name,
        benchmark=TINY,
        model={"width": 0.25},
        epochs=epochs,
        batch_size=50,
        output=str(output),
        pbt={"population": 3, "interval": 1, "backend": "ray", "compare_uniform": False, "seed": 3},
    )


def _tables(directory: Path, name: str) -> tuple[list, dict]:
    """The store's lineage (without wall times) and every member's weights table."""
    with Store(directory) as store:
        lineage = [
            {k: row[k] for k in ("time", "step", "member", "source", "weights", "lr")} for row in store.lineage(name)
        ]
        weights = {run["name"]: store.weights(run["name"]) for run in store.runs()}
    return lineage, weights


@pytest.mark.slow
def test_a_ray_pbt_killed_after_its_last_evaluation_finishes_on_a_rerun(tmp_path, monkeypatch):
    config = _config(tmp_path)

    def killed(grid):  # Tune is over and every record written; the driver dies before the table
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ray_backend, "_last_states", killed)
        with pytest.raises(KeyboardInterrupt):
            run_pbt(config, progress=False)
    lines: list[str] = []
    result = pbt_and_report(config, progress=False, say=lines.append)
    with Store(tmp_path) as store:
        statuses = {r["name"]: r["status"] for r in store.runs()}
    assert statuses == {f"rk-m0{i}": "completed" for i in range(3)}
    assert not any("diverged" in line for line in lines)
    assert result.best_name in statuses and (tmp_path / "pbt_result.json").is_file()
    assert (tmp_path / "report.md").is_file() and (tmp_path / "best_model.pt").is_file()


class KillTheDriver(Callback):
    """Interrupts the driver (as a kill would) when the first trial reports evaluation ``at``:
    mid-sync, some members past it and some not. Saved with the experiment as a plain callback."""

    def __init__(self, at: int) -> None:
        self.at = at

    def __reduce__(self):
        return (Callback, ())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result["training_iteration"] == self.at:
            raise KeyboardInterrupt


def _restart_ray() -> None:
    """A killed driver's trials die with its Ray: start a fresh one."""
    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.mark.slow
def test_ray_pbt_is_a_function_of_its_seed_and_resumes_with_the_same_decisions(tmp_path):
    first, second, killed = (_config(tmp_path / name, epochs=4) for name in ("first", "second", "killed"))
    run_pbt(first, progress=False)
    run_pbt(second, progress=False)
    expected = _tables(tmp_path / "first", "rk")
    assert any(row["member"] != row["source"] for row in expected[0])  # the policy exploited
    assert _tables(tmp_path / "second", "rk") == expected

    with pytest.raises(KeyboardInterrupt):
        run_pbt(killed, backend=ray_backend.RayBackend(callbacks=[KillTheDriver(at=2)]), progress=False)
    _restart_ray()
    run_pbt(killed, progress=False)
    assert _tables(tmp_path / "killed", "rk") == expected
