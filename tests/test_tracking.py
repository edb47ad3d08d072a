"""TensorBoard and MLflow copies of a run's records: real event files and a real MLflow file
store, read back and compared with the SQLite store (the source of truth)."""

import pytest

pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from scalarize.cli.main import main  # noqa: E402
from scalarize.experiments.train import run_experiment  # noqa: E402
from scalarize.store.database import Store  # noqa: E402
from scalarize.train.config import TrainConfig  # noqa: E402
from scalarize.train.trainer import Trainer  # noqa: E402

BENCH = {"name": "synthetic", "options": {"num_tasks": 2, "train_size": 120, "val_size": 40, "test_size": 40}}


def _config(tmp_path, **tracking):
    return TrainConfig(
        name="t",
        benchmark=BENCH,
        model={"width": 0.125, "depth": 1},
        epochs=3,
        batch_size=40,
        method={"weights": [0.7, 0.3]},
        stl=False,
        device="cpu",
        output=str(tmp_path / "out"),
        tracking=tracking,
    )


def _scalars(directory, tag):
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _mlflow_run(directory):
    client = mlflow.tracking.MlflowClient(tracking_uri=(directory / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(directory.name)
    runs = client.search_runs([experiment.experiment_id])
    return client, runs


def test_every_evaluation_reaches_tensorboard_and_mlflow_as_in_the_store(tmp_path, one_thread, monkeypatch):
    config = _config(tmp_path, tensorboard=True, mlflow={})
    original, calls = Trainer.save_checkpoint, []

    def killed_before_the_second_checkpoint(self):
        calls.append(1)
        if len(calls) == 2:  # evaluation 2 is in the store and the trackers, its checkpoint is not
            monkeypatch.setattr(Trainer, "save_checkpoint", original)
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", killed_before_the_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, progress=False)
    run_experiment(config, progress=False)  # resumes from evaluation 1 and logs evaluation 2 again
    directory = tmp_path / "out"
    with Store(directory) as store:
        history = store.history("t", "val")
        weights = store.weights("t")
        final = store.final("t")
    steps = [s for s, _ in history["task0/mse"]]
    assert len(steps) == 3

    board = directory / "tensorboard" / "t"
    for name, points in history.items():  # what the killed process logged after its checkpoint is purged
        assert _scalars(board, f"val/{name}") == [(s, pytest.approx(v, rel=1e-6)) for s, v in points]
    assert _scalars(board, "weights/task0") == [(s, pytest.approx(v, rel=1e-6)) for s, v in weights["task0"]]
    assert _scalars(board, "final/test/task1/mse") == [(steps[-1], pytest.approx(final["test"]["task1/mse"], rel=1e-6))]

    client, runs = _mlflow_run(directory)
    assert len(runs) == 1  # the resumed run continued the same MLflow run
    run = runs[0]
    assert run.info.run_name == "t" and run.info.status == "FINISHED"
    assert run.data.params["method.weights"] == "[0.7, 0.3]" and run.data.params["benchmark.name"] == "synthetic"
    assert run.data.tags["scalarize.kind"] == "main"
    logged = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val/task0/mse")}
    assert logged == set(history["task0/mse"])
    assert run.data.metrics["final/test/task1/mse"] == pytest.approx(final["test"]["task1/mse"])


def test_tracking_is_off_by_default_and_leaves_no_files(tmp_path, one_thread):
    run_experiment(_config(tmp_path), progress=False)
    assert not (tmp_path / "out" / "tensorboard").exists() and not (tmp_path / "out" / "mlruns").exists()


def test_a_failing_tracker_warns_once_and_training_goes_on(tmp_path, one_thread, monkeypatch):
    from scalarize.store import tracking

    def broken(self, *args):
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(tracking.TensorBoardWriter, "evaluation", broken)
    with pytest.warns(UserWarning, match="tracking of run t switched off: tracking server unreachable") as caught:
        result = run_experiment(_config(tmp_path, tensorboard=True), progress=False)
    assert result.main.status == "completed"
    assert sum("switched off" in str(w.message) for w in caught) == 1
    with Store(tmp_path / "out") as store:
        assert len(store.history("t", "val")["task0/mse"]) == 3


def test_tracking_keys_are_checked_like_every_other_key(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"output: {tmp_path / 'out'}\ntracking: {{tensorboard: true, comet: true}}\n")
    assert main(["train", str(path)]) == 2
    assert "tracking.comet: unknown key; allowed: tensorboard, mlflow, wandb" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tracking_does_not_change_a_runs_identity(tmp_path):
    assert _config(tmp_path).fingerprint() == _config(tmp_path, tensorboard=True, mlflow={}).fingerprint()
