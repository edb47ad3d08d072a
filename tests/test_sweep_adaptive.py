"""`scalarize sweep` with `design: adaptive` (issue 15, item 2): batches placed at the front's gaps."""

import json
import sqlite3

import pytest

from scalarize.cli.main import main
from scalarize.experiments.sweep import SweepConfig, load_sweep_config, run_sweep
from scalarize.store import Store
from scalarize.train.config import ConfigError
from scalarize.train.run import is_finished, result_from_store

TINY = {
    "name": "ad",
    "benchmark": {"name": "synthetic_linear", "options": {"train_size": 400, "val_size": 200, "test_size": 200}},
    "model": {"family": "linear", "depth": 0},
    "method": {"name": "scalarization"},
    "optimizer": {"name": "adam", "lr": 0.05},
    "schedule": {"name": "cosine"},
    "epochs": 4,
    "batch_size": 100,
    "stl": False,
    "device": "cpu",
}


def config(tmp_path, **adaptive) -> SweepConfig:
    return SweepConfig.model_validate(
        {**TINY, "output": str(tmp_path), "sweep": {"design": "adaptive", "adaptive": adaptive}}
    )


def w0(result) -> list[float]:
    return [m.weights[0] for m in result.members]


class FrontBackend:
    """Writes each run's metrics from a known front instead of training: the wiring alone.

    With ``a = w0³`` the point is ``(task0/mse, task1/mse) = (1 − a, a)``: every point is on the
    front (the line ``x + y = 1``), and even weights crowd the part near ``w0 = 0``."""

    name = "front"

    def __init__(self, stop_after: int | None = None) -> None:
        self.groups: list[str | None] = []
        self.written = 0
        self.stop_after = stop_after

    def train(self, runs, store, *, progress=True, log=print, on_evaluation=None, group=None):
        self.groups.append(group)
        for run in runs:
            if is_finished(store, run.name):
                continue
            if self.stop_after is not None and self.written == self.stop_after:
                raise KeyboardInterrupt  # a kill between two runs
            a = run.weights[0] ** 3 / sum(run.weights) ** 3
            metrics = {"task0/mse": 1 - a, "task1/mse": a}
            with store.transaction():
                store.start_run(run.name, run.kind, json.loads(run.config.model_dump_json()), run.fingerprint)
                store.record_final(run.name, {"val": metrics, "test": metrics})
                store.finish_run(run.name, "completed", 1)
            self.written += 1
        return {r.name: result_from_store(store, r.name) for r in runs}


def test_batches_go_where_the_front_is_sparse(tmp_path):
    # First batch w0 = 0, 1, 0.5: points (1, 0), (0, 1), (0.875, 0.125). Gaps (×√2): 0.125 from
    # w0 = 0 to 0.5, 0.875 from 0.5 to 1. Batch 1 halves the long one (w0 = 0.75), then its first
    # half still beats the short gap (0.4375 > 0.125): w0 = 0.625. Batch 2: points at w0 = 0, 0.5,
    # 0.625, 0.75, 1 leave gaps 0.125, 0.119, 0.178, 0.578: 0.875, then 0.8125 (0.289 > 0.178).
    backend = FrontBackend()
    result = run_sweep(config(tmp_path, initial=3, batch=2, batches=2), backend=backend, progress=False)
    assert w0(result) == [0.0, 1.0, 0.5, 0.75, 0.625, 0.875, 0.8125]
    assert [m.name for m in result.members] == [f"ad-{i:03d}" for i in range(7)]
    assert backend.groups == ["batch-00", "batch-01", "batch-02"]
    assert all(sum(m.weights) == pytest.approx(1) for m in result.members)


def test_a_killed_sweep_reruns_to_the_same_design_without_retraining(tmp_path):
    reference = run_sweep(config(tmp_path / "a", initial=3, batch=2, batches=2), backend=FrontBackend(), progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed after batch 0 and one run of batch 1
        run_sweep(
            config(tmp_path / "b", initial=3, batch=2, batches=2), backend=FrontBackend(stop_after=4), progress=False
        )
    rerun_backend = FrontBackend()
    rerun = run_sweep(config(tmp_path / "b", initial=3, batch=2, batches=2), backend=rerun_backend, progress=False)
    assert rerun_backend.written == 3  # the rest of batch 1, then batch 2
    assert w0(rerun) == w0(reference)
    assert [m.config.fingerprint() for m in rerun.members] == [m.config.fingerprint() for m in reference.members]


def test_more_batches_on_a_rerun_continue_the_sweep(tmp_path):
    run_sweep(config(tmp_path, initial=3, batch=2, batches=1), backend=FrontBackend(), progress=False)
    backend = FrontBackend()
    result = run_sweep(config(tmp_path, initial=3, batch=2, batches=2), backend=backend, progress=False)
    assert backend.written == 2 and len(result.members) == 7


def test_changed_batch_size_on_a_rerun_is_refused(tmp_path):
    run_sweep(config(tmp_path, initial=3, batch=2, batches=2), backend=FrontBackend(), progress=False)
    # batch 1 is w0 = 0.75 alone (ad-003, as before); batch 2 would put w0 = 0.875 in ad-004 (0.625)
    with pytest.raises(ConfigError, match="already holds run 'ad-004'.*adaptive design"):
        run_sweep(config(tmp_path, initial=3, batch=1, batches=2), backend=FrontBackend(), progress=False)


def test_diverged_members_are_left_out_of_the_front(tmp_path):
    class Diverging(FrontBackend):  # the w0 = 0.5 member diverges: no metrics
        def train(self, runs, store, **kwargs):
            out = super().train(runs, store, **kwargs)
            with store.transaction():
                store.record_final("ad-002", {})
                store.finish_run("ad-002", "diverged", 1)
            return out

    result = run_sweep(config(tmp_path, initial=3, batch=1, batches=1), backend=Diverging(), progress=False)
    # the one gap left, w0 = 0 to 1: its midpoint repeats the diverged weights (not retrained),
    # so its first half is halved: w0 = 0.25
    assert w0(result)[3] == 0.25


def test_defaults_are_the_corners_and_uniform_then_three_batches_of_two(tmp_path):
    result = run_sweep(config(tmp_path), backend=FrontBackend(), progress=False)
    assert w0(result)[:3] == [0.0, 1.0, 0.5] and len(result.members) == 3 + 3 * 2


def test_seeds_are_crossed_with_each_batch(tmp_path):
    cfg = SweepConfig.model_validate(
        {
            **TINY,
            "output": str(tmp_path),
            "sweep": {"design": "adaptive", "seeds": [0, 1], "adaptive": {"initial": 3, "batch": 1, "batches": 1}},
        }
    )
    result = run_sweep(cfg, backend=FrontBackend(), progress=False)
    assert [(m.weights[0], m.seed) for m in result.members][-2:] == [(0.75, 0), (0.75, 1)]


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweep.adaptive.batch=0", "sweep.adaptive.batch: Input should be greater than or equal to 1 (got 0)"),
        ("sweep.adaptive.batches=-1", "sweep.adaptive.batches: Input should be greater than or equal to 0"),
        ("sweep.adaptive.initial=0", "sweep.adaptive.initial: Input should be greater than or equal to 1"),
        ("sweep.adaptive.size=3", "sweep.adaptive.size: unknown key; allowed: initial, batch, batches"),
        ("sweep.design=lattice", "sweep.adaptive: read only by design: adaptive (got design: lattice)"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path, override, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps({**TINY, "sweep": {"design": "adaptive", "adaptive": {"batch": 2}}}))
    with pytest.raises(ConfigError) as error:
        load_sweep_config(path, [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_preference_conditioned_method_is_refused(tmp_path):
    cfg = SweepConfig.model_validate(
        {**TINY, "method": {"name": "cosmos"}, "output": str(tmp_path), "sweep": {"design": "adaptive"}}
    )
    with pytest.raises(ConfigError, match="sweep.design: adaptive trains weights batch by batch"):
        run_sweep(cfg, progress=False)
    assert not (tmp_path / "scalarize.db").exists()


# -- for real: the command, the engine the sweep picks, a kill mid-batch ----------------------------
class Killed(Exception):
    pass


def _rows(database, query):
    with sqlite3.connect(database) as db:
        return sorted(db.execute(query).fetchall())


@pytest.mark.slow
def test_end_to_end_and_resume_mid_batch_on_synthetic_linear(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        json.dumps({**TINY, "sweep": {"design": "adaptive", "adaptive": {"initial": 3, "batch": 2, "batches": 2}}})
    )
    assert main(["sweep", str(path), "-q", f"output={tmp_path / 'reference'}"]) == 0
    out = capsys.readouterr().out
    assert "adaptive batch 1/2: weights (0.75, 0.25), (0.25, 0.75)" in out
    assert "engine: vectorized" in out and "7 members" in out
    assert "an adaptive design" in (tmp_path / "reference" / "report.md").read_text()

    def kill(run, model, step, evaluation):  # batch 1's first member, after its second evaluation
        if run == "ad-003" and evaluation == 1:
            raise Killed

    killed = load_sweep_config(path, [f"output={tmp_path / 'killed'}"])
    with pytest.raises(Killed):
        run_sweep(killed, progress=False, on_evaluation=kill)
    database = tmp_path / "killed" / "scalarize.db"
    before = {r[0]: r[1:] for r in _rows(database, "SELECT name, status, finished FROM runs")}
    assert [before[f"ad-00{i}"][0] for i in range(5)] == ["completed"] * 3 + ["running"] * 2
    assert main(["sweep", str(path), "-q", f"output={tmp_path / 'killed'}"]) == 0
    assert "3 run(s) already trained: read from the store" in capsys.readouterr().out
    after = {r[0]: r[1:] for r in _rows(database, "SELECT name, status, finished FROM runs")}
    assert all(after[f"ad-00{i}"] == before[f"ad-00{i}"] for i in range(3))  # not retrained
    assert len(after) == 7 and all(status == "completed" for status, _ in after.values())
    reference = tmp_path / "reference" / "scalarize.db"
    assert _rows(database, "SELECT name, fingerprint FROM runs") == _rows(
        reference, "SELECT name, fingerprint FROM runs"
    )
    final = "SELECT run, split, name, value FROM final"
    assert _rows(database, final) == _rows(reference, final)  # as if never killed
    with Store(tmp_path / "killed") as store:
        assert store.final("ad-006")["val"]["task0/mse"] > 0
